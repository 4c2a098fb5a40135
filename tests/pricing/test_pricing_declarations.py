"""Each billing path and each reason a log cannot be priced is declared once, and everything
else reads the declarations: the route, the report's sentences, docs/rules.md's codes."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import re
from typing import Any

from conftest import ROOT
from pricing_helpers import SHANGHAI, frame, log, other, rules

import reconcile
from reconcile.pricing import reasons
from reconcile.pricing.contract import ModelRule
from reconcile.pricing.paths import registry
from reconcile.pricing.paths.base import Reason
from reconcile.pricing.stage import price_logs


def _declared_reasons() -> list[tuple[str, Reason]]:
    """(module, Reason) for every Reason at module level anywhere in the package."""
    found = []
    for info in pkgutil.walk_packages(reconcile.__path__, "reconcile."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        found += [(info.name, v) for v in vars(module).values() if isinstance(v, Reason)]
    return found


def test_every_declared_reason_is_registered_once_with_its_sentence() -> None:
    registered = {r.code: r for r in registry.REASONS}
    assert len(registered) == len(registry.REASONS), "a reason code is declared twice"
    for module, reason in _declared_reasons():
        assert registered.get(reason.code) is reason, f"{module}: {reason.code} not registered"
    for code, reason in registered.items():
        assert reason.text
        assert reasons.reason_text(code) == reason.text


def test_reasons_are_declared_at_module_level_only() -> None:
    # a Reason made inside a function would escape the registry and the report's sentences
    for path in (ROOT / "reconcile").rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        top = {id(node.value) for node in tree.body if isinstance(node, ast.Assign | ast.AnnAssign)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Reason":
                assert id(node) in top, f"{path}:{node.lineno}: declare the Reason at module level"


def test_docs_list_every_reason_code_as_declared() -> None:
    doc = reasons.RULES_DOC.read_text("utf-8")
    assert reasons.rules_doc(doc) == doc, f"docs/rules.md is stale: run `{reasons.REGENERATE}`"
    for r in registry.REASONS:
        assert f"| `{r.code}` | " in doc
        assert f" | {r.text} |" in doc


def test_every_rule_key_of_a_path_is_a_rule_field_and_every_price_has_a_path() -> None:
    declared = {k for p in registry.DECLARED for k in p.rule_keys}
    general = {"match", "effective_from", "effective_to", "line"}
    assert declared == set(ModelRule.model_fields) - general


PER_CALL = '[[model]]\nmatch = "call"\nmodel_price = 0.04\n'
TOKENS = '[[model]]\nmatch = "tokens"\nmodel_ratio = 1.25\n'


def test_a_log_takes_the_first_registered_path_its_declared_marks_show() -> None:
    # One log marked for every path; stripping each path's declared `other` keys and
    # `content` in turn sends it down the next registered path, through every tier.
    marked: dict[str, Any] = {"quota_delta": -5, "is_task": True, "billing_mode": "tiered_expr"}
    marked |= {"audio": True, "text_input": 10}
    content = "大小 1024x1024, 生成数量 1, 计算参数：seconds: 5.00"
    logs, want = [], []
    for path in registry.ROUTES:
        model = "tokens" if path is registry.ROUTES[-1] else "call"
        logs.append(log(model_name=model, prompt_tokens=10, quota=20000, content=content,
                        other=json.dumps(marked)))  # fmt: skip
        want.append(path.name)
        marked = {k: v for k, v in marked.items() if k not in path.marks}
        content = re.sub(path.content, "", content) if path.content else content
    got = price_logs(frame(logs), rules(PER_CALL + TOKENS), SHANGHAI).priced["path"].tolist()
    assert got == want


def test_the_docs_table_is_rewritten_between_its_markers_only() -> None:
    stale = f"before\n{reasons.BEGIN}\n| `old_code` | x | y |\n{reasons.END}\nafter\n"
    fresh = reasons.rules_doc(stale)
    assert fresh.startswith(f"before\n{reasons.BEGIN}\n| code |")
    assert fresh.endswith(f"{reasons.END}\nafter\n")
    assert "old_code" not in fresh


EVERY_REASON = """
[[model]]
match = "gpt-4o"
model_ratio = 1.25
cache_ratio = 0.5
tool_prices = { web_search = 10 }
[[model]]
match = "sora-2"
model_price = 0.1
task_ratios = { size = { "720x1280" = 1, "1024x1792" = 1.666667 } }
[[model]]
match = "dall-e-3"
model_price = 0.04
image_prices = { "1024x1792/hd" = 0.12 }
[[model]]
match = "tts"
model_ratio = 7.5
[[model]]
match = "huge"
model_ratio = 1000000
"""


def test_every_declared_reason_is_one_some_log_gets_and_no_other() -> None:
    t = {"prompt_tokens": 1000, "quota": 5000}
    task = {"model_name": "sora-2", "quota": 5}
    rows = [
        log(**t, other="{broken"),
        log(**t, other=other(cache_tokens=1.5)),
        log(**t, other=other(tool_surcharges=[{"name": "file_search", "count": 2}])),
        log(**t, other=other(audio_input_seperate_price=True, audio_input_token_count=100)),
        log(**t, model_name="tts", other=other(audio=True, text_input=10, audio_output=100)),
        log(**t, model_name="tts", other=other(audio=True)),
        log(**t, other=other(image_output=100)),
        log(model_name="dall-e-3", quota=9, content="大小 512x512, 品质 hd, 生成数量 1",
            other=other(model_price=0.3)),
        log(**t, other=other(is_task=True)),
        log(**task, content="计算参数：seconds: 5.50"),
        log(**task, content="计算参数：resolution: 2.00"),
        log(**task, content="计算参数：size: 3.00"),
        log(model_name="sora-2", quota=-600,
            other=other(pre_consumed_quota=1000, actual_quota=400, quota_delta=-600)),
        log(model_name="sora-2", quota=-600, other=other(pre_consumed_quota=1000)),
        log(**t, other=other(billing_mode="tiered_expr")),
        log(quota=100),
        log(prompt_tokens=-5, quota=100),
        log(prompt_tokens=5000, quota=8750, other=other(cache_tokens=4000)),
        log(model_name="huge", prompt_tokens=2**60, quota=5),
    ]  # fmt: skip
    got = price_logs(frame(rows), rules(EVERY_REASON), SHANGHAI).not_repriceable_reasons
    assert got == dict.fromkeys(sorted(reasons.REASON_TEXT), 1)


def test_library_code_names_reason_codes_by_their_declaration_only() -> None:
    # a code written out as a string would outlive a rename of its declaration unnoticed;
    # the paths declare the codes and read the gateway's own words (billing_mode "tiered_expr")
    codes = {r.code for r in registry.REASONS}
    for path in (ROOT / "reconcile" / "pricing").glob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        declared = {
            id(node.args[0])
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Reason" and node.args
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in codes and id(node) not in declared:
                raise AssertionError(f"{path}:{node.lineno}: use the declared Reason's .code")
