"""The fast tiers (vectorised text, per-case images and tasks) give every log of every billing
path the verdict the per-row Decimal reference (`rowwise.price_rows`) gives it alone."""

from __future__ import annotations

import json
import random
from typing import Any

import pandas as pd
import pytest
from pricing_helpers import NOON, SHANGHAI, frame, log, rules

from reconcile.pricing.rowwise import RowInputs, price_rows
from reconcile.pricing.rules import Rules
from reconcile.pricing.stage import STATUSES, price_logs

RULES = """
quota_per_unit = 500000
[groups]
default = 1
vip = 0.8
[[model]]
match = "gpt-4o*"
model_ratio = 1.25
completion_ratio = 4
cache_ratio = 0.5
tool_prices = { web_search = 10 }
[[model]]
match = "dall-e-3"
model_price = 0.04
image_prices = { "1024x1792/hd" = 0.12, "1024x1024/hd" = 0.08 }
[[model]]
match = "dall-e-2"
model_price = 0.02
[[model]]
match = "sora-2"
model_price = 0.1
task_ratios = { size = { "720x1280" = 1, "1024x1792" = 1.666667 } }
[[model]]
match = "gpt-4o-audio"
model_ratio = 1.25
completion_ratio = 4
audio_ratio = 16
audio_completion_ratio = 2
[[model]]
match = "flux-pro"
model_price = 0.05
[group_pairs.svip]
default = 0.9
"""


def _other(**fields: Any) -> str:
    base = {"user_group_ratio": -1, "frt": random.randint(100, 999), "request_path": "/v1/x"}
    return json.dumps(base | fields, ensure_ascii=False)


def _image(r: random.Random) -> dict[str, Any]:
    n = r.randint(1, 4)
    size, quality, price = r.choice(
        [("1024x1024", "standard", 0.04), ("1024x1792", "hd", 0.12), ("512x512", "hd", 0.02)]
    )
    group, ratio = r.choice([("default", 1), ("vip", 0.8)])
    return log(
        model_name=r.choice(["dall-e-3", "dall-e-2"]),
        group=group,
        quota=round(price * n * 500000 * ratio) + r.choice([0, 0, 0, 1, 7, -500]),
        prompt_tokens=r.choice([0, 1]),
        content=f"大小 {size}, 品质 {quality}, 生成数量 {n}",
        other=_other(model_price=r.choice([price, 0.02, 0.04]), group_ratio=ratio),
    )


def _task(r: random.Random) -> dict[str, Any]:
    seconds = r.randint(4, 12)
    size, ratio = r.choice([("1.67", 1.666667), ("", 1.0), ("2.50", 2.5)])
    content = f"操作 generate, 计算参数：seconds: {seconds}.00"
    content += f", size: {size}" if size else ""
    exact = 0.1 * 500000 * seconds * ratio
    quota = r.choice([int(exact), round(exact), int(exact) + 3, int(exact) * 2])
    keys = r.choice([{"is_task": True}, {"is_task": True, "quota_delta": 5}, {}])
    return log(model_name="sora-2", quota=quota, content=content, other=_other(**keys))


def _settle(r: random.Random) -> dict[str, Any]:
    pre, actual = 400000, r.randint(100000, 400000)
    quota = r.choice([actual - pre, actual - pre + 9])
    amounts = {"task_id": "v1", "pre_consumed_quota": pre, "actual_quota": actual}
    return log(model_name="sora-2", quota=quota, other=_other(**amounts))


def _audio(r: random.Random) -> dict[str, Any]:
    ti, to, ai, ao = (r.randint(10, 2000) for _ in range(4))
    group, ratio = r.choice([("default", 1.0), ("vip", 0.8)])
    quota = round((ti + to * 4 + ai * 16 + ao * 32) * 1.25 * ratio) + r.choice([0, 0, 3])
    split = {"text_input": ti, "text_output": to, "audio_input": ai, "audio_output": ao}
    flag = r.choice([{"audio": True}, {"ws": True}, {"audio": True, "is_task": True}])
    return log(
        model_name="gpt-4o-audio",
        group=group,
        quota=quota,
        prompt_tokens=ti + ai,
        completion_tokens=to + ao,
        other=_other(model_ratio=1.25, **flag, **split),
    )


def _text(r: random.Random) -> dict[str, Any]:
    p, c, calls = r.randint(0, 5000), r.randint(0, 1000), r.choice([0, 0, 1, 2])
    group, ratio = r.choice([("default", 1.0), ("vip", 0.8), ("svip", 0.9)])
    quota = round(((p + c * 4) * 1.25 + 10 * calls / 1000 * 500000) * ratio)
    fields: dict[str, Any] = {"model_ratio": 1.25, "group_ratio": ratio}
    if calls:
        fields["tool_surcharges"] = [{"name": "web_search", "count": calls, "price": 10.0}]
    if group == "svip":
        fields["user_group_ratio"] = 0.9
    return log(
        model_name=r.choice(["gpt-4o", "gpt-4o-mini"]),
        group=group,
        quota=quota + r.choice([0, 0, 0, 1, 250]),
        prompt_tokens=p,
        completion_tokens=c,
        other=_other(**fields),
    )


def _flux(r: random.Random) -> dict[str, Any]:
    quota = r.choice([25000, 25000, 25001, 30000])
    return log(model_name="flux-pro", quota=quota, prompt_tokens=1, other=_other(model_price=0.05))


BUILDERS = (_image, _task, _settle, _audio, _text, _flux)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_path_gets_the_per_row_reference_verdict(seed: int) -> None:
    r = random.Random(seed)
    random.seed(seed)
    logs = frame([r.choice(BUILDERS)(r) for _ in range(1500)])
    seen = _agree_with_reference(logs, rules(RULES))
    assert {"image", "task_submit", "task_settle", "audio", "text", "per_call"} <= seen


def _agree_with_reference(logs: pd.DataFrame, contract: Rules) -> set[str]:
    """Assert every log's verdict from `price_logs` is the one the per-row reference gives
    it alone (json.loads then Decimal along its path); return the paths seen."""
    priced = price_logs(logs, contract, SHANGHAI).priced
    idx = [contract.models.index(contract.rule_for(m, NOON, SHANGHAI)) for m in logs.model_name]
    alone = price_rows(
        RowInputs(
            quota=logs.quota.tolist(),
            prompt=logs.prompt_tokens.tolist(),
            completion=logs.completion_tokens.tolist(),
            model=logs.model_name.tolist(),
            group=logs.group.tolist(),
            content=logs.content.tolist(),
            other=logs.other.tolist(),
            rule_idx=idx,
        ),
        contract,
    )
    seen: set[str] = set()
    for i, v in enumerate(alone):
        got = priced.iloc[i]
        assert got["status"] == STATUSES[v.status], (i, got.to_dict(), v)
        want = None if v.expected is None or v.status == 3 else v.expected
        assert (None if pd.isna(got["expected_quota"]) else int(got["expected_quota"])) == want
        if v.path not in ("text", "cache", "per_call"):  # the row tier's own labels
            assert got["path"] == v.path, (i, got.to_dict(), v)
        seen.add(v.path.split("+")[0])
    return seen


#: Keys or content that put a log on another path or add to its charge, while its tokens'
#: price (1000 prompt, 100 completion, 400 of them cached) equals its charge.
OFF_PATH_CASES = {
    "older web-search flags": ({"web_search": True, "web_search_call_count": 3}, ""),
    "audio input priced apart": (
        {"audio_input_seperate_price": True, "audio_input_token_count": 50},
        "",
    ),
    "tiered billing, rule without tiers": ({"billing_mode": "tiered_expr"}, ""),
    "a task flag": ({"is_task": True}, ""),
    "task multipliers in content": ({}, "操作 generate, 计算参数：seconds: 5.00"),
    "image tokens without an image_ratio": ({"image_output": 20}, ""),
    "1h cache writes": ({"cache_creation_tokens_1h": 30, "cache_creation_tokens": 30}, ""),
    "semantics in capitals": ({"usage_semantic": "Anthropic"}, ""),
    "the /v1/messages double charge": (
        {"claude": True, "request_conversion": ["Claude Messages", "OpenAI Compatible"]},
        "",
    ),
    "the gateway's own billing path": ({"admin_info": {"usage_billing_path": "anthropic"}}, ""),
}


@pytest.mark.parametrize("case", OFF_PATH_CASES)
def test_a_log_whose_tokens_price_agrees_still_takes_its_own_path(case: str) -> None:
    """The vectorised text tier may settle only what its formula fully prices: a log that
    shows another path, a surcharge or other usage semantics gets the reference's verdict."""
    extra, content = OFF_PATH_CASES[case]
    plain = round((1000 - 400 + 400 * 0.5 + 100 * 4) * 1.25)  # OpenAI usage, cache read
    anthropic = round((1000 + 400 * 0.5 + 100 * 4) * 1.25)  # prompt without the cache
    logs = frame(
        [
            log(
                quota=quota,
                prompt_tokens=1000,
                completion_tokens=100,
                content=content,
                other=_other(model_ratio=1.25, group_ratio=1.0, cache_tokens=400, **extra),
            )
            for quota in (plain, anthropic)
        ]
    )
    _agree_with_reference(logs, rules(RULES))


def test_a_surcharge_the_gateway_logged_but_did_not_bill_is_not_ok() -> None:
    """A log whose charge equals its tokens' price yet lists a web-search surcharge the
    contract prices was billed less than the contract: a mismatch, as the per-row reference
    says, not ok because the vectorised text tier's formula happens to agree."""
    fields = {"model_ratio": 1.25, "group_ratio": 1.0}
    calls = [{"name": "web_search", "count": 2, "price": 10.0}]
    logs = frame(
        [
            log(
                quota=round((1000 + 100 * 4) * 1.25),
                prompt_tokens=1000,
                completion_tokens=100,
                other=_other(**fields, tool_surcharges=calls),
            )
        ]
    )
    priced = price_logs(logs, rules(RULES), SHANGHAI).priced
    assert priced["status"].iloc[0] == "mismatch"
