"""Each billing path's edge cases, through the public stage: what is accepted, what is a
finding, and what cannot be checked."""

from __future__ import annotations

from typing import Any

from pricing_helpers import SHANGHAI, frame, log, other, rules

from reconcile.pricing.stage import price_logs

STRICT = """
[tolerance]
quota = 0
[[model]]
match = "claude-x"
model_ratio = 1.5
completion_ratio = 5
cache_ratio = 0.1
cache_creation_ratio = 1.25
[[model]]
match = "gpt-4o"
model_ratio = 1.25
completion_ratio = 4
cache_ratio = 0.5
[[model]]
match = "sora-2"
model_price = 0.1
task_ratios = { size = { "720x1280" = 1, "1024x1792" = 1.666667 } }
[[model]]
match = "veo"
model_price = 0.5
[[model]]
match = "dall-e-3"
model_price = 0.04
[[model]]
match = "tts"
model_ratio = 7.5
"""


def priced(*rows: dict[str, Any], text: str = STRICT) -> list[tuple[str, str, Any]]:
    p = price_logs(frame(list(rows)), rules(text), SHANGHAI).priced
    return list(zip(p["status"], p["path"], p["reason_code"].fillna(""), strict=True))


def test_truncating_paths_accept_the_floor_even_at_zero_tolerance() -> None:
    # 0.1 x 500,000 x 8 s x 1.666667 = 666,666.8: new-api's int() gives 666,666
    task = other(is_task=True, model_price=0.1, group_ratio=1)
    content = "操作 generate, 计算参数：seconds: 8.00, size: 1.67"
    rows = [
        log(model_name="sora-2", quota=q, content=content, other=task)
        for q in (666666, 666667, 666665)
    ]
    assert [s for s, _, _ in priced(*rows)] == ["ok", "ok", "mismatch"]


def test_anthropic_usage_accepts_the_truncation_of_older_servers() -> None:
    # (333 + 5 x 0.1 + 333 x 5) x 1.5 = 2997.75: rounded 2998, int() 2997; both accepted
    o = other(model_ratio=1.5, usage_semantic="anthropic", cache_tokens=5, cache_ratio=0.1)
    rows = [
        log(model_name="claude-x", prompt_tokens=333, completion_tokens=333, quota=q, other=o)
        for q in (2998, 2997, 2996)
    ]
    assert [s for s, _, _ in priced(*rows)] == ["ok", "ok", "mismatch"]


def test_a_task_multiplier_the_rules_do_not_list_is_not_a_mismatch() -> None:
    task = other(is_task=True, model_price=0.5, group_ratio=1)
    rows = [
        log(model_name="veo", quota=500000, content="操作 generate, 计算参数：resolution: 2.00",
            other=task),
        log(model_name="sora-2", quota=500000, content="操作 generate, 计算参数：size: 3.00",
            other=other(is_task=True, model_price=0.1)),
    ]  # fmt: skip
    assert priced(*rows) == [
        ("not_repriceable", "task_submit", "task_ratio_unpriced"),
        ("not_repriceable", "task_submit", "task_ratio_not_in_contract"),
    ]


def test_an_image_size_without_a_contract_price_is_not_a_mismatch() -> None:
    folded = other(model_price=0.12, group_ratio=1)
    rows = [
        log(model_name="dall-e-3", prompt_tokens=1, quota=120000, other=folded,
            content="大小 1024x1792, 品质 hd, 生成数量 2"),
        log(model_name="dall-e-3", prompt_tokens=1, quota=60000,
            other=other(model_price=0.04, group_ratio=1),
            content="大小 1024x1024, 品质 standard, 生成数量 3"),
        log(model_name="dall-e-3", prompt_tokens=1, quota=80000,
            other=other(model_price=0.04, group_ratio=1),
            content="大小 1024x1024, 品质 standard, 生成数量 3"),
    ]  # fmt: skip
    assert priced(*rows) == [
        ("not_repriceable", "image", "image_size_unpriced"),
        ("ok", "image", ""),  # 0.04 x 3 x 500,000
        ("mismatch", "image", ""),
    ]


def test_audio_without_an_audio_ratio_in_the_rules_is_unchecked() -> None:
    o = other(model_ratio=7.5, audio=True, text_input=10, audio_output=100)
    rows = [log(model_name="tts", prompt_tokens=10, completion_tokens=100, quota=9000, other=o)]
    assert priced(*rows) == [("not_repriceable", "audio", "audio_ratio_missing")]


def test_a_charge_only_anthropic_semantics_explain_is_unchecked_not_ok_nor_mismatch() -> None:
    # no usage_semantic, no claude flag: OpenAI semantics give (1000 + 4000 x 0.5) x 1.25
    # = 3750; the Anthropic arithmetic (5000 + 2000) x 1.25 = 8750 is what was charged
    o = other(model_ratio=1.25, cache_tokens=4000, cache_ratio=0.5)
    rows = [
        log(prompt_tokens=5000, quota=3750, other=o),
        log(prompt_tokens=5000, quota=8750, other=o),
        log(prompt_tokens=5000, quota=9999, other=o),
    ]
    assert priced(*rows) == [
        ("ok", "cache", ""),
        ("not_repriceable", "cache", "usage_semantics_unknown"),
        ("mismatch", "cache", ""),
    ]


def test_the_double_charge_is_named_only_with_its_signs_in_the_log() -> None:
    conv = other(model_ratio=1.5, cache_tokens=4000, cache_ratio=0.1, claude=True,
                 request_conversion="Claude Messages -> OpenAI Compatible")  # fmt: skip
    plain_claude = other(model_ratio=1.5, cache_tokens=4000, cache_ratio=0.1, claude=True)
    rows = [
        log(model_name="claude-x", prompt_tokens=5000, completion_tokens=100, quota=8850,
            other=conv),
        log(model_name="claude-x", prompt_tokens=1000, completion_tokens=100, quota=2850,
            other=plain_claude),  # Anthropic usage: 1000 + 400 + 500, x 1.5
    ]  # fmt: skip
    result = price_logs(frame(rows), rules(STRICT), SHANGHAI)
    p = result.priced
    assert p["status"].tolist() == ["mismatch", "ok"]
    assert p["reason_code"].iloc[0] is not None
    assert "charging its 4000 cached tokens twice" in p["reason"].iloc[0]
    assert p["expected_quota"].iloc[0] == 2850  # the contract's (OpenAI usage) arithmetic


def test_a_settlement_that_does_not_add_up_is_a_mismatch() -> None:
    o = other(task_id="t1", pre_consumed_quota=1000, actual_quota=400, quota_delta=-600)
    rows = [
        log(model_name="sora-2", quota=-600, other=o),
        log(model_name="sora-2", quota=-500, other=o),
    ]
    assert priced(*rows) == [
        ("not_repriceable", "task_settle", "task_settlement"),
        ("mismatch", "task_settle", ""),
    ]


def test_a_group_pair_the_gateway_applied_differently_is_named() -> None:
    text = '[group_pairs.svip]\ndefault = 0.9\n[[model]]\nmatch = "gpt-4o"\nmodel_ratio = 1.25\n'
    text += "completion_ratio = 4\n"
    used = other(model_ratio=1.25, completion_ratio=4, group_ratio=0.8, user_group_ratio=0.8)
    agreed = other(model_ratio=1.25, completion_ratio=4, group_ratio=0.9, user_group_ratio=0.9)
    rows = [
        log(prompt_tokens=1000, completion_tokens=200, quota=1800, other=used),
        log(prompt_tokens=1000, completion_tokens=200, quota=2025, other=agreed),
    ]
    p = price_logs(frame(rows), rules(text), SHANGHAI).priced
    assert p["status"].tolist() == ["mismatch", "ok"]
    assert p["path"].tolist() == ["text+group_pair"] * 2
    assert p["group_ratio"].tolist() == ["0.9", "0.9"]
    assert p["reason"].iloc[0] == (
        "gateway used group_ratio 0.8, contract pair ratio 0.9 for group 'default'"
    )
