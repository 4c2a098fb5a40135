"""Hostile `other` fields and extreme quotas: pricing never raises, every log is accounted for."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pricing_helpers import GPT4O, SHANGHAI, frame, log, other, rules

from reconcile.core.tolerance import within
from reconcile.pricing.other import parse_other
from reconcile.pricing.rowwise import read_other
from reconcile.pricing.stage import price_logs

RULES = rules(GPT4O + '\n[group_pairs.svip]\ndefault = 0.9\n[[model]]\nmatch = "sora-2"\n'
              'model_price = 0.1\n')  # fmt: skip
KEYS = [
    "model_ratio", "completion_ratio", "cache_tokens", "cache_creation_tokens",
    "cache_creation_tokens_5m", "cache_creation_tokens_1h", "usage_semantic", "claude",
    "tool_surcharges", "web_search_call_count", "audio", "text_input", "audio_output",
    "billing_mode", "task_id", "quota_delta", "actual_quota", "is_task", "user_group_ratio",
    "request_conversion", "image_output", "audio_input_token_count", "admin_info",
]  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6,
)  # fmt: skip


@st.composite
def other_texts(draw: st.DrawFn) -> str | None:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.none() | st.text(max_size=40))  # anything at all
    obj = draw(st.dictionaries(st.sampled_from(KEYS), JSON, max_size=6))
    text = json.dumps(obj, allow_nan=True)
    if kind == 3 and text:
        cut = draw(st.integers(0, len(text)))
        return text[:cut]  # a truncated object
    return text


@st.composite
def hostile_logs(draw: st.DrawFn) -> dict[str, Any]:
    return log(
        model_name=draw(st.sampled_from(["gpt-4o", "claude-x", "dall-e-3", "sora-2", "none"])),
        group=draw(st.sampled_from(["default", "vip", "svip"])),
        prompt_tokens=draw(st.integers(-5, 10**7)),
        completion_tokens=draw(st.integers(0, 10**7)),
        quota=draw(st.integers(-(2**63) + 1, 2**63 - 1)),
        content=draw(st.sampled_from(["", "生成数量 3", "操作 generate, 计算参数：seconds: 4.00"])),
        other=draw(other_texts()),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(hostile_logs(), min_size=1, max_size=12))
def test_no_other_field_makes_pricing_raise_and_every_log_is_accounted_for(
    rows: list[dict[str, Any]],
) -> None:
    result = price_logs(frame(rows), RULES, SHANGHAI)
    assert len(result.priced) == len(rows)
    status = result.priced["status"]
    assert status.notna().all()
    assert len(result.findings) == int((status != "ok").sum())
    unchecked = int((status == "not_repriceable").sum())
    assert sum(result.not_repriceable_reasons.values()) == unchecked
    assert result.priced.loc[status == "not_repriceable", "reason"].str.len().gt(0).all()


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(other_texts(), min_size=1, max_size=20))
def test_the_other_parser_never_raises(texts: list[str | None]) -> None:
    import pandas as pd

    parsed = parse_other(pd.Series(texts, dtype="string"))
    assert len(parsed.state) == len(texts)
    for text in texts:
        obj, problem = read_other(text)
        assert isinstance(obj, dict)
        assert problem == "" or problem.startswith("`other` is not")


def test_quotas_at_the_edge_of_int64_do_not_crash_pricing() -> None:
    top = 2**63 - 1
    o = other(model_ratio=1.25, completion_ratio=4)
    rows = [
        log(prompt_tokens=1000, completion_tokens=200, quota=top, other=o),
        log(prompt_tokens=1000, completion_tokens=200, quota=-top, other=o),
        log(model_name="dall-e-3", prompt_tokens=1, quota=top, other=""),
    ]
    result = price_logs(frame(rows), RULES, SHANGHAI)
    assert result.priced["status"].tolist() == ["mismatch"] * 3
    assert result.findings["diff_quota"].min() > 0  # never wrapped negative
    assert result.expected_quota == 2250 + 2250 + 20000


def test_tolerance_never_wraps_around() -> None:
    a = np.array([2**63 - 1, -(2**63) + 1, 5], dtype=np.int64)
    b = np.array([-(2**63) + 1, 2**63 - 1, 6], dtype=np.int64)
    assert within(a, b, RULES.tolerance).tolist() == [False, False, True]


def test_a_quota_of_2_63_or_more_is_not_repriceable_and_crashes_nothing() -> None:
    # Regression: a quota >= 2**63 (possible in a gateway's JSON) crashed pricing.
    o = other(model_ratio=1.25, completion_ratio=4)
    rows = [
        log(prompt_tokens=1000, completion_tokens=200, quota=2250, other=o),
        log(prompt_tokens=1000, completion_tokens=200, quota=2250, other=o),
        log(prompt_tokens=1000, completion_tokens=200, quota=2250, other=o),
    ]
    logs = frame(rows)
    logs["quota"] = pd.Series([2250, 2**63, 2**64 + 5], dtype=object)
    result = price_logs(logs, RULES, SHANGHAI)
    p = result.priced
    assert p["status"].tolist() == ["ok", "not_repriceable", "not_repriceable"]
    assert p["reason_code"].tolist()[1:] == ["quota_beyond_64_bits"] * 2
    assert result.expected_quota == 2250
