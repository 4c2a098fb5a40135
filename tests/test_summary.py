"""summary.json: the contract's fields, in order, with integer quotas and every category."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from conftest import summary_errors
from report_helpers import HOSTILE, clean_result, empty_result, invoice_result, make_result

from reconcile.core.schema import CATEGORIES, CONSUME, REFUND, TOPUP
from reconcile.report.summary import build_summary, summary_json, write_summary

CONTRACT_KEYS = [
    "schema_version",
    "period",
    "logs",
    "expected_quota",
    "ledger",
    "discrepancies",
    "status",
]


def _ints(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def test_contract_fields_come_first_in_the_contract_order() -> None:
    summary = build_summary(make_result())
    assert list(summary)[: len(CONTRACT_KEYS)] == CONTRACT_KEYS
    assert summary["schema_version"] == 1
    assert summary["period"] == {
        "start": "2026-10-01T00:00:00+08:00",
        "end": "2026-11-01T00:00:00+08:00",
        "timezone": "Asia/Shanghai",
    }
    assert summary["label"] == "2026-10"


def test_logs_totals_are_the_fetched_logs_by_type() -> None:
    result = make_result()
    logs = result.fetch.logs
    summary = build_summary(result)
    for name, code in (("consume", CONSUME), ("refund", REFUND), ("topup", TOPUP)):
        rows = logs[logs["type"] == code]
        assert summary["logs"][name] == {"count": len(rows), "quota": int(rows["quota"].sum())}  # type: ignore[index]
    assert summary["logs"]["error"] == {"count": 1, "quota": 0}  # type: ignore[index]
    assert summary["expected_quota"] == result.pricing.expected_quota
    assert summary["net_spend_quota"] == (
        int(logs.loc[logs["type"] == CONSUME, "quota"].sum())
        - int(logs.loc[logs["type"] == REFUND, "quota"].sum())
    )


def test_every_category_is_present_with_integer_count_and_quota() -> None:
    result = make_result()
    summary = build_summary(result)
    found = summary["discrepancies"]
    details = summary["categories"]
    assert isinstance(found, dict)
    assert isinstance(details, dict)
    assert list(found) == list(CATEGORIES)
    for cat in CATEGORIES:
        rows = result.findings[result.findings["category"] == cat]
        entry = found[cat]
        assert list(entry) == ["count", "quota"]  # the contract's shape, exactly
        assert _ints(entry["count"])
        assert _ints(entry["quota"])
        assert entry["count"] == len(rows)
        assert entry["quota"] == int(rows["diff_quota"].fillna(0).sum())
        assert Decimal(details[cat]["amount"]) == sum(rows["diff_amount"], Decimal(0))
    assert found["not_repriceable"]["count"] == 0
    # `failing` counts what fails the run: the error-severity rows, not the warnings.
    assert details["missing_in_ledger"]["failing"] == found["missing_in_ledger"]["count"] == 4
    assert details["out_of_period"]["failing"] == 0
    assert details["out_of_period"]["severity"] == "warning"
    assert summary["status"] == "fail"


def test_ledger_section_is_the_ledger_rows_in_quota() -> None:
    result = make_result()
    assert result.ledger is not None
    ledger = build_summary(result)["ledger"]
    assert isinstance(ledger, dict)
    assert ledger["rows"] == len(result.ledger.rows) == 32
    assert ledger["quota"] == int(result.ledger.rows["quota"].sum())
    assert ledger["kind"] == "ledger"
    assert ledger["unreadable_rows"] == 2
    assert sum(v["count"] for v in ledger["by_type"].values()) == ledger["rows"]


def test_a_clean_run_without_a_ledger_has_zeros_and_passes() -> None:
    summary = build_summary(clean_result())
    assert summary["status"] == "pass"
    assert summary["ledger"] == {
        "rows": 0,
        "quota": 0,
        "kind": "none",
        "by_type": {k: {"count": 0, "quota": 0} for k in ("consume", "refund", "topup")},
        "unreadable_rows": 0,
        "net_spend_quota": 0,
        "signed_by_type": {"consume": 0, "refund": 0, "topup": 0},
    }
    assert summary["headline"]["books"] is None  # type: ignore[index]
    assert summary["verdict"] == "PASS"
    found = summary["discrepancies"]
    assert isinstance(found, dict)
    assert all(found[c]["count"] == 0 and found[c]["quota"] == 0 for c in CATEGORIES)


def test_consume_logs_without_a_rule_are_counted_under_no_billing_path() -> None:
    result = make_result()
    summary = build_summary(result)
    pricing = summary["pricing"]
    assert isinstance(pricing, dict)
    logs = result.fetch.logs
    consume = logs[logs["type"] == CONSUME]
    unpriced = consume["model_name"].isin(["claude-x", HOSTILE[3]])
    assert pricing["logs_by_path"] == {
        "text": {"count": int((~unpriced).sum()), "quota": int(consume[~unpriced]["quota"].sum())},
        "none": {"count": int(unpriced.sum()), "quota": int(consume[unpriced]["quota"].sum())},
    }
    assert pricing["not_repriceable_by_reason"] == {}
    assert summary_errors(summary) == []


def test_an_invoice_stands_in_for_the_ledger() -> None:
    result = make_result()
    assert result.ledger is not None
    invoice = replace(result.ledger, kind="invoice", path="invoice.csv")
    summary = build_summary(replace(result, ledger=None, invoice=invoice))
    ledger = summary["ledger"]
    assert isinstance(ledger, dict)
    assert ledger["kind"] == "invoice"
    assert ledger["quota"] == invoice.quota
    assert ledger["by_type"]["consume"]["quota"] == invoice.quota  # an invoice is all spend


def test_amounts_are_exact_decimal_strings_in_the_report_currency() -> None:
    summary = build_summary(make_result(currency="CNY"))
    assert summary["currency"] == {"code": "CNY", "per_usd": "7.2", "quota_per_unit": "500000"}
    amounts = summary["amounts"]
    assert isinstance(amounts, dict)
    # 465,021 quota at 7.2 CNY per 500,000 quota, exactly.
    assert amounts["consume"] == "6.696302"


def test_written_json_is_deterministic_and_carries_no_floats(tmp_path: Path) -> None:
    result = make_result()
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_summary(result, a)
    write_summary(result, b)
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    floats: list[float] = []
    json.loads(text, parse_float=lambda s: floats.append(float(s)) or 0.0)
    assert floats == []
    assert json.loads(text)["fetch"]["key_refs"] == ["key-aaaa1111", "key-bbbb2222"]


def test_every_kind_of_run_validates_against_the_published_schema() -> None:
    for result in (
        make_result(),
        make_result(currency="CNY"),
        clean_result(),
        invoice_result(),
        empty_result(),
    ):
        summary = json.loads(summary_json(build_summary(result)))
        assert summary_errors(summary) == []


def test_the_schema_rejects_what_breaks_the_contract() -> None:
    good = json.loads(summary_json(build_summary(make_result())))
    broken = json.loads(json.dumps(good))
    del broken["discrepancies"]["pricing_mismatch"]  # a contract category missing
    assert summary_errors(broken)
    broken = json.loads(json.dumps(good))
    broken["amounts"]["consume"] = 0.93  # money as a binary float
    assert summary_errors(broken)
    broken = json.loads(json.dumps(good))
    broken["period"]["label"] = "2026-10"  # the contract's period object has exactly 3 keys
    assert summary_errors(broken)
    broken = json.loads(json.dumps(good))
    broken["undocumented"] = 1  # a new field must be added to the schema and docs first
    assert summary_errors(broken)
