"""Re-pricing consume logs: new-api's formula case by case, verdicts, findings and warnings."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pricing_helpers import GPT4O, NOON, SHANGHAI, at, frame, log, other, rules

from reconcile.core import schema
from reconcile.core.money import round_half_away
from reconcile.core.results import Pricing
from reconcile.pricing.quota import round_div
from reconcile.pricing.rules import Rules
from reconcile.pricing.stage import PRICED_DTYPES, price_logs, price_one

R = rules(GPT4O)
TOKENS = {
    "model_ratio": 1.25,
    "group_ratio": 1,
    "completion_ratio": 4,
    "cache_ratio": 0.5,
    "model_price": -1,
}


def run(rows: list[dict[str, Any]], r: Rules = R) -> Pricing:
    return price_logs(frame(rows), r, SHANGHAI)


def only(rows: list[dict[str, Any]] | dict[str, Any], r: Rules = R) -> pd.Series:
    """The priced row of a single log."""
    result = run(rows if isinstance(rows, list) else [rows], r)
    assert len(result.priced) == 1
    return result.priced.iloc[0]


# ----------------------------------------------------------------------------- the formula


def test_prompt_and_completion_tokens() -> None:
    row = only(log(prompt_tokens=1000, completion_tokens=500, quota=3750, other=other(**TOKENS)))
    assert row["expected_quota"] == 3750  # (1000 + 500 x 4) x 1.25
    assert (row["status"], row["diff_quota"], row["reason"]) == ("ok", 0, "")
    assert (row["rule"], row["rule_line"]) == ("gpt-4o", R.models[0].line)
    assert [row[c] for c in ("model_ratio", "completion_ratio", "cache_ratio")] == [
        "1.25",
        "4",
        "0.5",
    ]
    assert (row["cache_creation_ratio"], row["group_ratio"]) == ("1.25", "1")
    assert row["model_price"] is pd.NA


def test_cache_reads_are_priced_at_cache_ratio() -> None:
    o = other(**{**TOKENS, "cache_tokens": 400})
    row = only(log(prompt_tokens=1000, completion_tokens=100, quota=1500, other=o))
    assert row["expected_quota"] == 1500  # (600 + 400 x 0.5 + 100 x 4) x 1.25
    assert row["cache_tokens"] == 400


def claude(prompt: int, **o: Any) -> dict[str, Any]:
    fields = {
        "model_ratio": 1.5,
        "group_ratio": 1,
        "completion_ratio": 5,
        "cache_ratio": 0.1,
        "cache_tokens": 200,
        "cache_creation_tokens": 300,
        "cache_creation_ratio": 1.25,
        **o,
    }
    return log(
        model_name="claude-sonnet-4",
        prompt_tokens=prompt,
        completion_tokens=100,
        quota=0,
        other=other(**fields),
    )


def test_cache_writes_openai_usage_subtracts_cached_tokens_from_the_base() -> None:
    # prompt 1000 includes 200 read + 300 written: (500 + 20 + 375 + 500) x 1.5 = 2092.5
    assert only(claude(1000))["expected_quota"] == 2093
    assert price_one(R.models[1], 1000, 100, cache_tokens=200, cache_creation_tokens=300) == 2093


def test_anthropic_usage_subtracts_nothing_from_the_base() -> None:
    # Anthropic's input_tokens already exclude cache: 500 + 20 + 375 + 500 = 1395 x 1.5
    assert only(claude(500, usage_semantic="anthropic"))["expected_quota"] == 2093
    assert only(claude(500, claude=True))["expected_quota"] == 2093  # older servers' marker
    # the same log read with OpenAI semantics would subtract again: (0 + 895) x 1.5
    assert only(claude(500))["expected_quota"] == 1343
    assert only(claude(500, usage_semantic="openai", claude=True))["expected_quota"] == 1343


def test_anthropic_one_hour_cache_writes_cost_more() -> None:
    split = {
        "usage_semantic": "anthropic",
        "cache_tokens": 0,
        "cache_creation_tokens": 1000,
        "cache_creation_tokens_5m": 400,
        "cache_creation_tokens_1h": 600,
    }
    # 100 + 400 x 1.25 + 600 x (1.25 x 1.6) + 100 x 5 = 2300, x 1.5
    assert only(claude(100, **split))["expected_quota"] == 3450
    r = rules(
        GPT4O.replace('match = "claude-*"', 'match = "claude-*"\ncache_creation_ratio_1h = 2.5')
    )
    assert only(claude(100, **split), r)["expected_quota"] == 3900  # 600 x 2.5 instead: 2600 x 1.5
    rule = r.models[1]
    assert (
        price_one(
            rule,
            100,
            100,
            cache_creation_tokens=1000,
            cache_creation_tokens_5m=400,
            cache_creation_tokens_1h=600,
            anthropic=True,
        )
        == 3900
    )


def test_per_call_price_times_group_ratio() -> None:
    o = other(model_price=0.04, group_ratio=0.8, model_ratio=0)
    row = only(log(model_name="dall-e-3", group="vip", prompt_tokens=1, quota=16000, other=o))
    assert row["expected_quota"] == 16000  # 0.04 x 500,000 x 0.8
    assert (row["model_price"], row["model_ratio"], row["completion_ratio"]) == (
        "0.04",
        pd.NA,
        pd.NA,
    )
    assert row["group_ratio"] == "0.8"
    assert row["status"] == "ok"


def test_per_call_without_usage_is_free_as_on_the_gateway() -> None:
    unbilled = only(log(model_name="dall-e-3", quota=0, other=other(model_price=0.04)))
    assert (unbilled["expected_quota"], unbilled["status"]) == (0, "ok")
    assert "no tokens reported" in unbilled["reason"]
    # an async task submission has no tokens and is charged the price
    task = only(
        log(model_name="dall-e-3", quota=20000, other=other(model_price=0.04, task_id="t1"))
    )
    assert (task["expected_quota"], task["status"]) == (20000, "ok")


def test_an_unlisted_group_has_ratio_one() -> None:
    row = only(log(group="enterprise", prompt_tokens=1000, quota=1250, other=other(**TOKENS)))
    assert (row["group_ratio"], row["expected_quota"], row["status"]) == ("1", 1250, "ok")
    vip = only(
        log(
            group="vip",
            prompt_tokens=1000,
            quota=1000,
            other=other(**{**TOKENS, "group_ratio": 0.8}),
        )
    )
    assert (vip["group_ratio"], vip["expected_quota"], vip["status"]) == ("0.8", 1000, "ok")


def test_minimum_of_one_quota_unless_free() -> None:
    r = rules(
        '[groups]\nfree = 0\n[[model]]\nmatch = "tiny"\nmodel_ratio = 0.0001\n'
        '[[model]]\nmatch = "free"\nmodel_ratio = 0\n'
    )
    rows = [
        log(model_name="tiny", prompt_tokens=10, quota=1),  # 0.001 -> 1
        log(model_name="tiny", prompt_tokens=3000, quota=1),  # 0.3 -> 1, and worth a warning
        log(model_name="free", prompt_tokens=5000, quota=0),  # ratio 0: free, no minimum
        log(model_name="tiny", group="free", prompt_tokens=5000, quota=0),  # group ratio 0
        log(model_name="tiny", quota=0),  # no tokens at all: nothing charged
    ]
    result = run(rows, r)
    assert result.priced["expected_quota"].tolist() == [1, 1, 0, 0, 0]
    assert set(result.priced["status"]) == {"ok"}
    assert len(result.warnings) == 1
    assert "'tiny'" in result.warnings[0]
    assert "1 log(s)" in result.warnings[0]
    assert "minimum of 1" in result.warnings[0]


@pytest.mark.parametrize(
    ("tokens", "ratio", "exact"),
    [(2, "1.25", 3), (1, "0.5", 1), (3, "0.5", 2), (45, "0.7", 32), (50, "1.15", 58)],
)
def test_half_way_rounds_away_from_zero_exactly(tokens: int, ratio: str, exact: int) -> None:
    r = rules(f'[[model]]\nmatch = "m"\nmodel_ratio = {ratio}\n')
    assert (
        only(log(model_name="m", prompt_tokens=tokens, quota=exact), r)["expected_quota"] == exact
    )
    assert price_one(r.models[0], tokens, 0) == exact


def test_binary_floats_would_get_these_wrong() -> None:
    # what a float reimplementation computes for the cases above
    assert round(2 * 1.25) == 2  # Python rounds half to even: 2, not 3
    assert math.floor(45 * 0.7 + 0.5) == 31  # 45 x 0.7 is 31.499999999999996 in binary
    assert math.floor(50 * 1.15 + 0.5) == 57
    assert 45 * Decimal("0.7") == Decimal("31.5")


def test_rounding_helpers_round_ties_away_from_zero_in_both_signs() -> None:
    n = np.array([25, -25, 24, -24, 26, -26, 15, -15, 5, -5, 0], dtype=np.int64)
    got = round_div(n, np.full(len(n), 10, dtype=np.int64))
    assert got.tolist() == [3, -3, 2, -2, 3, -3, 2, -2, 1, -1, 0]
    assert round_div(n, np.ones(len(n), dtype=np.int64)).tolist() == n.tolist()
    assert [round_half_away(Decimal(x) / 10) for x in n.tolist()] == got.tolist()


def test_the_rule_switches_at_the_exact_second_of_local_midnight() -> None:
    r = rules(
        '[[model]]\nmatch = "m"\nmodel_ratio = 1\neffective_to = 2026-10-15\n'
        '[[model]]\nmatch = "m"\nmodel_ratio = 2\neffective_from = 2026-10-15\n'
    )
    midnight = at("2026-10-15 00:00:00")
    rows = [log(model_name="m", prompt_tokens=100, created_at=t) for t in (midnight - 1, midnight)]
    priced = run(rows, r).priced
    assert priced["expected_quota"].tolist() == [100, 200]
    assert priced["rule_line"].tolist() == [1, 5]
    # the same instants read in UTC are both still 14 October
    utc = price_logs(frame(rows), r, __import__("zoneinfo").ZoneInfo("UTC")).priced
    assert utc["expected_quota"].tolist() == [100, 100]


def test_exact_name_beats_glob_in_pricing() -> None:
    r = rules(GPT4O + '[[model]]\nmatch = "gpt-*"\nmodel_ratio = 5\n')
    rows = [log(prompt_tokens=100), log(model_name="gpt-3.5-turbo", prompt_tokens=100)]
    priced = run(rows, r).priced
    assert priced["rule"].tolist() == ["gpt-4o", "gpt-*"]
    assert priced["expected_quota"].tolist() == [125, 500]


# ----------------------------------------------------------------------------- verdicts


def test_within_and_beyond_tolerance() -> None:
    rows = [
        log(prompt_tokens=1000, quota=1251, other=other(**TOKENS)),  # +1: tolerated
        log(prompt_tokens=1000, quota=1252, other=other(**TOKENS)),  # +2
        log(prompt_tokens=1000, quota=1248, other=other(**TOKENS)),  # -2
    ]
    result = run(rows)
    assert result.priced["status"].tolist() == ["ok", "mismatch", "mismatch"]
    assert result.priced["diff_quota"].tolist() == [1, 2, -2]
    f = result.findings
    assert f["category"].tolist() == ["pricing_mismatch"] * 2
    assert f["diff_quota"].tolist() == [2, 2]  # at stake: the absolute difference
    assert f["explanation"].iloc[0].startswith("charged 1252, the rules give 1250 (+2): ")
    assert f["explanation"].iloc[1].startswith("charged 1248, the rules give 1250 (-2): ")
    assert "ratios agree with the contract" in f["explanation"].iloc[0]
    relative = rules(GPT4O + "[tolerance]\nquota = 0\nrelative = 0.01\n")
    ok = run([log(prompt_tokens=1000, quota=1262), log(prompt_tokens=1000, quota=1263)], relative)
    assert ok.priced["status"].tolist() == ["ok", "mismatch"]  # 12 <= 12.62 < 13


def test_the_reason_names_the_ratio_the_gateway_used() -> None:
    over = other(**{**TOKENS, "model_ratio": 2.5})
    row = run([log(prompt_tokens=1000, quota=2500, other=over)])
    assert row.priced["reason"].iloc[0] == "gateway used model_ratio 2.5, contract 1.25"
    assert row.findings["explanation"].iloc[0] == (
        "charged 2500, the rules give 1250 (+1250): gateway used model_ratio 2.5, contract 1.25"
    )
    image = other(model_price=0.08, group_ratio=1)
    found = run([log(model_name="dall-e-3", prompt_tokens=1, quota=40000, other=image)]).findings
    assert "gateway used model_price 0.08, contract 0.04" in found["explanation"].iloc[0]
    per_call = other(model_price=0.01, group_ratio=1)
    found = run([log(prompt_tokens=10, quota=5000, other=per_call)]).findings
    assert (
        "gateway priced per call (model_price 0.01), contract per token (model_ratio 1.25)"
        in (found["explanation"].iloc[0])
    )


def test_ratios_are_compared_by_their_effect_on_the_quota() -> None:
    # 2.5 x 0.5 = 1.25 x 1: the same charge, so no finding; a different charge names them
    o = other(**{**TOKENS, "model_ratio": 2.5, "group_ratio": 0.5})
    result = run(
        [log(prompt_tokens=1000, quota=1250, other=o), log(prompt_tokens=1000, quota=2500, other=o)]
    )
    assert result.priced["status"].tolist() == ["ok", "mismatch"]
    assert result.priced["reason"].iloc[1] == (
        "gateway used model_ratio 2.5, contract 1.25; "
        "gateway used group_ratio 0.5, contract ratio 1 for group 'default'"
    )
    f = result.findings.iloc[0]
    assert (f["category"], f["diff_quota"]) == ("pricing_mismatch", 1250)
    assert f["explanation"].startswith("charged 2500, the rules give 1250 (+1250): gateway used")


def test_ratios_that_did_not_shape_the_charge_are_not_compared() -> None:
    # cache_ratio differs but there were no cache tokens; completion differs, no completion
    o = other(**{**TOKENS, "cache_ratio": 0.25, "completion_ratio": 8})
    assert only(log(prompt_tokens=1000, quota=1250, other=o))["status"] == "ok"


def test_unpriced_models() -> None:
    r = rules(GPT4O + '[[model]]\nmatch = "later"\nmodel_ratio = 1\neffective_from = 2026-10-15\n')
    rows = [
        log(model_name="acme-llm", prompt_tokens=10, quota=777),
        log(model_name="later", prompt_tokens=10, quota=10),
        log(model_name="", quota=5),
    ]
    result = run(rows, r)
    p = result.priced
    assert p["status"].tolist() == ["unpriced"] * 3
    assert p["expected_quota"].isna().all()
    assert p["diff_quota"].isna().all()
    assert p["rule"].isna().all()
    assert p["reason"].tolist() == [
        "no rule matches model 'acme-llm'",
        "no rule for 'later' is in effect on 2026-10-10; its rules cover 2026-10-15 to open end "
        f"(line {r.models[-1].line})",
        "the log has no model name",
    ]
    f = result.findings
    assert f["category"].tolist() == ["unpriced_model"] * 3
    assert f["severity"].tolist() == [schema.SEVERITY["unpriced_model"]] * 3
    assert f["diff_quota"].tolist() == [777, 10, 5]  # the charge nobody verified
    assert (
        f["explanation"].iloc[0] == "no rule matches model 'acme-llm'; charged 777 quota unverified"
    )
    assert result.expected_quota == 0


W, E = "warning", "error"  # a broken record is an error: the gateway's own record is corrupt
NOT_REPRICEABLE = [
    (
        {"other": other(**TOKENS, web_search=True, web_search_call_count=3), "quota": 16250},
        "a web_search surcharge (3 calls) the rules do not price",
        W,
    ),
    (
        {
            "other": other(
                **TOKENS, tool_surcharges=[{"name": "web_search", "count": 1, "price": 10}]
            )
        },
        "a web_search surcharge (1 call)",
        W,
    ),
    (
        {"other": other(**TOKENS, audio_input_seperate_price=True, audio_input_token_count=50)},
        "50 audio input tokens priced per 1M tokens, which the rules do not price",
        W,
    ),
    ({"other": other(**TOKENS, audio=True, audio_input=20)}, "need an audio_ratio", W),
    ({"other": other(**TOKENS, billing_mode="tiered_expr")}, "tiered billing expression", W),
    (
        {"prompt_tokens": 0, "other": other(**TOKENS, task_id="task_9")},
        "no tokens recorded, yet charged 5,000 quota",
        W,
    ),
    ({"prompt_tokens": 0, "other": other(**TOKENS)}, "no tokens recorded, yet charged 5,000", W),
    (
        {
            "quota": -100,
            "other": other(
                **TOKENS, task_id="t", quota_delta=-100, actual_quota=900, pre_consumed_quota=1000
            ),
        },
        "an async task's settlement: actual 900 - pre-charged 1,000 = -100 as logged",
        W,
    ),
    ({"other": '{"model_ratio": 1.25, "cache_tokens": '}, "`other` is not valid JSON, so its", E),
    ({"other": "[1, 2]"}, "`other` is not a JSON object", E),
    ({"other": other(**{**TOKENS, "cache_tokens": 1.5})}, "invalid cache_tokens: 1.5", E),
    ({"other": other(**{**TOKENS, "cache_tokens": "12"})}, "invalid cache_tokens: '12'", E),
    (
        {"other": other(**TOKENS, image=True, image_ratio=2, image_output=100)},
        "100 image input tokens need an image_ratio",
        W,
    ),
    ({"prompt_tokens": -5, "other": other(**TOKENS)}, "negative token counts", W),
]


@pytest.mark.parametrize(("fields", "reason", "severity"), NOT_REPRICEABLE)
def test_logs_that_cannot_be_repriced_say_why(
    fields: dict[str, Any], reason: str, severity: str
) -> None:
    row = {"prompt_tokens": 1000, "quota": 5000, **fields}
    result = run([log(**row)])
    p = result.priced.iloc[0]
    assert p["status"] == "not_repriceable", p["reason"]
    assert reason in p["reason"]
    assert p["expected_quota"] is pd.NA
    assert p["rule"] == "gpt-4o"
    assert p["reason_code"]
    assert result.not_repriceable_reasons == {p["reason_code"]: 1}
    f = result.findings.iloc[0]
    assert (f["category"], f["severity"]) == ("not_repriceable", severity)
    assert f["diff_quota"] == abs(row["quota"])  # the quota at stake
    assert f["expected_quota"] is pd.NA
    assert f["explanation"].startswith("cannot re-price: ")
    assert result.expected_quota == 0


def test_image_tokens_are_priced_when_the_rule_has_an_image_ratio() -> None:
    r = rules('[[model]]\nmatch = "vision"\nmodel_ratio = 1\nimage_ratio = 2\n')
    o = other(model_ratio=1, image=True, image_ratio=2, image_output=100)
    row = only(log(model_name="vision", prompt_tokens=300, quota=400, other=o), r)
    assert (row["expected_quota"], row["status"]) == (400, "ok")  # 200 + 100 x 2


def test_other_empty_means_no_cache_and_broken_other_does_not_stop_per_call_prices() -> None:
    rows = [
        log(prompt_tokens=1000, quota=1250, other=""),  # older servers write no `other`
        log(prompt_tokens=1000, quota=1250, other=None),
        log(model_name="dall-e-3", prompt_tokens=1, quota=20000, other="{oops"),
    ]
    result = run(rows)
    assert result.priced["status"].tolist() == ["ok", "ok", "ok"]
    assert result.priced["cache_tokens"].isna().all()
    assert result.warnings == ["1 consume log(s) have an `other` field that is not valid JSON"]


def test_findings_carry_the_logs_identity_in_the_runs_time_zone() -> None:
    row = log(
        id=4242,
        request_id="req-x",
        token_name="batch",
        group="vip",
        prompt_tokens=1000,
        quota=9999,
        created_at=NOON,
        other=other(**TOKENS),
    )
    f = run([row]).findings
    assert list(f.columns) == [*schema.FINDING_COLUMNS, "path"]
    assert f.dtypes.astype(str).to_dict() == {**schema.FINDING_DTYPES, "path": "string"}
    got = f.iloc[0]
    assert (got["source"], got["type"], got["log_id"], got["request_id"]) == (
        "pricing",
        "consume",
        4242,
        "req-x",
    )
    assert got["created_at"] == "2026-10-10T12:00:00+08:00"
    assert (got["token_name"], got["model_name"], got["group"]) == ("batch", "gpt-4o", "vip")
    assert (got["log_quota"], got["expected_quota"], got["diff_quota"]) == (9999, 1000, 8999)
    assert got["ledger_line"] is pd.NA
    assert got["ledger_quota"] is pd.NA
    assert got["path"] == "text"


def test_only_consume_logs_are_priced_and_totals_cover_priced_ones() -> None:
    rows = [
        log(prompt_tokens=1000, quota=1250),
        log(prompt_tokens=1000, quota=1300),  # mismatch: still counted in expected_quota
        log(model_name="acme", quota=500),  # unpriced: not counted
        log(type=schema.TOPUP, quota=100000),
        log(type=schema.REFUND, quota=250),
        log(type=schema.ERROR, quota=0),
    ]
    result = run(rows)
    assert result.priced["id"].tolist() == [1, 2, 3]
    assert result.expected_quota == 2500


def test_no_logs() -> None:
    result = run([])
    assert list(result.priced.columns) == list(PRICED_DTYPES)
    assert len(result.priced) == 0
    assert len(result.findings) == 0
    assert result.expected_quota == 0
    assert result.warnings == []


def test_priced_columns_and_dtypes() -> None:
    p = run([log(prompt_tokens=1), log(model_name="x")]).priced
    assert p.dtypes.astype(str).to_dict() == PRICED_DTYPES


def test_a_broken_log_among_many_costs_only_itself() -> None:
    # 70,000 logs span two parse chunks; one broken `other`, one web search surcharge
    n = 70_000
    good = other(**TOKENS)
    rows = [log(prompt_tokens=1000, quota=1250, other=good) for _ in range(n)]
    rows[40_000] = log(prompt_tokens=1000, quota=1250, other='{"model_ratio": 1.25,,}')
    rows[50_000] = log(
        prompt_tokens=1000, quota=6250, other=other(**TOKENS, web_search_call_count=1)
    )
    result = run(rows)
    status = result.priced["status"]
    assert status.value_counts().to_dict() == {"ok": n - 2, "not_repriceable": 2}
    assert "not valid JSON" in result.priced["reason"].iloc[40_000]
    assert "web_search surcharge (1 call)" in result.priced["reason"].iloc[50_000]
    assert result.expected_quota == (n - 2) * 1250


def test_quotas_too_large_for_int64_arithmetic_are_still_exact() -> None:
    r = rules('[[model]]\nmatch = "big"\nmodel_ratio = 123456.789123\n')
    rows = [
        log(model_name="big", prompt_tokens=10**13),
        log(model_name="big", prompt_tokens=10**15),
    ]
    p = run(rows, r).priced
    assert p["expected_quota"].iloc[0] == price_one(r.models[0], 10**13, 0) == 1234567891230000000
    assert p["status"].iloc[1] == "not_repriceable"  # 1.2e20 does not fit a 64-bit quota
    assert "64-bit" in p["reason"].iloc[1]


def test_an_unreadable_ratio_only_skips_the_comparison() -> None:
    # a ratio of an unexpected type cannot be compared, but the log can still be re-priced
    o = other(**{**TOKENS, "group_ratio": "1"})
    row = only(log(prompt_tokens=1000, quota=1250, other=o))
    assert (row["status"], row["expected_quota"]) == ("ok", 1250)
