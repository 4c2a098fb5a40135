"""Every output agrees on signs and totals, an open period never passes, text is guarded once."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import load_workbook
from report_helpers import FETCHED_AT, clean_result, make_result

from reconcile.core import findings as findings_mod
from reconcile.core.aggregates import LogAggregates
from reconcile.core.money import exact_sum
from reconcile.core.results import RunResult
from reconcile.core.schema import CONSUME, findings_frame
from reconcile.report import workbook as workbook_mod
from reconcile.report.csvfile import write_discrepancies_csv
from reconcile.report.junit import render_junit
from reconcile.report.markdown import render_markdown
from reconcile.report.safe import safe_text
from reconcile.report.summary import build_summary
from reconcile.report.workbook import write_workbook


def _csv(result: RunResult, tmp_path: Path) -> list[dict[str, str]]:
    path = tmp_path / "d.csv"
    write_discrepancies_csv(result.findings, path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _int(text: str) -> int | None:
    return int(text) if text else None


def test_csv_json_and_workbook_agree_on_signed_totals(tmp_path: Path) -> None:
    result = make_result()
    rows = _csv(result, tmp_path)
    summary: dict[str, Any] = build_summary(result)
    for cat, entry in summary["by_category"].items():
        mine = [r for r in rows if r["category"] == cat]
        assert entry["count"] == len(mine)
        assert entry["quota_at_stake"] == sum(int(r["diff_quota"] or 0) for r in mine)
        for key in ("contract_diff_quota", "books_diff_quota"):
            values = [_int(r[key]) for r in mine if r[key]]
            assert entry[key] == (sum(v for v in values if v is not None) if values else None)
    # the contract headline is the pricing findings' signed sum, each log once
    contract = sum(int(r["contract_diff_quota"]) for r in rows if r["contract_diff_quota"])
    head = summary["headline"]["contract"]
    assert head["net"]["quota"] == contract
    assert head["overcharged"]["quota"] - head["undercharged"]["quota"] == head["gross"]["quota"]
    assert head["net"]["amount"] == str(Decimal(contract) / 500000).ljust(8, "0")
    # the books headline: gateway net spend minus the ledger's net spend
    logs = result.fetch.logs
    assert result.ledger is not None
    book = result.ledger.rows
    gateway = int(logs.loc[logs["type"] == CONSUME, "quota"].sum()) - int(
        logs.loc[logs["type"] == 6, "quota"].sum()
    )
    books = int(book.loc[book["type"] == CONSUME, "quota"].sum()) - int(
        book.loc[book["type"] == 6, "quota"].sum()
    )
    assert summary["headline"]["books"]["net"]["quota"] == gateway - books
    assert summary["ledger"]["signed_by_type"]["refund"] <= 0
    # the workbook holds the same signed quota per finding
    path = tmp_path / "r.xlsx"
    write_workbook(result, path)
    ws = load_workbook(path)["Discrepancies"]
    fields = [f for f, _ in workbook_mod.finding_layout()]
    sheet = [dict(zip(fields, r, strict=True)) for r in ws.iter_rows(min_row=2, values_only=True)]
    assert sorted(
        (str(r["category"]), r["log_id"] or 0, r["ledger_line"] or 0, r["contract_diff_quota"])
        for r in sheet
    ) == sorted(
        (
            r["category"],
            _int(r["log_id"]) or 0,
            _int(r["ledger_line"]) or 0,
            _int(r["contract_diff_quota"]),
        )
        for r in rows
    )


def test_signs_follow_one_convention() -> None:
    found = make_result().findings
    for row in found.to_dict("records"):
        cat = row["category"]
        books = row["books_diff_quota"]
        if cat == "pricing_mismatch":
            assert row["contract_diff_quota"] == row["log_quota"] - row["expected_quota"]
            assert pd.isna(books)  # its own comparison only: never counted twice
        elif cat == "missing_in_ledger":
            sign = -1 if row["type"] == "refund" else 1
            assert books == sign * row["log_quota"]
        elif cat in ("missing_in_logs", "duplicate_ledger", "out_of_period"):
            sign = -1 if row["type"] == "refund" else 1
            assert books == -sign * row["ledger_quota"]
        elif cat == "amount_mismatch":
            sign = -1 if row["type"] == "refund" else 1
            assert books == sign * (row["log_quota"] - row["ledger_quota"])
        assert isinstance(row["action"], str)
        assert row["action"]


def test_junit_and_markdown_carry_the_signed_figures() -> None:
    result = make_result()
    summary = build_summary(result)
    root = ET.fromstring(render_junit(summary, result.findings).encode())
    failure = next(
        c.find("failure") for c in root.iter("testcase") if c.get("name") == "pricing_mismatch"
    )
    assert failure is not None
    assert "gateway − contract: +" in (failure.text or "")
    assert "Action: claim a credit" in (failure.text or "")
    text = render_markdown(summary)
    assert "Contract: overcharged" in text
    assert "gateway minus contract" in text


def test_quota_sums_are_exact_beyond_int64() -> None:
    big = 2**63 - 1
    assert exact_sum(pd.Series([big, big], dtype="int64")) == 2 * big
    assert exact_sum(pd.Series([big, pd.NA, 1], dtype="Int64")) == big + 1
    result = make_result()
    logs = result.fetch.logs.copy()
    consume = logs.index[logs["type"] == CONSUME][:2]
    logs.loc[consume, "quota"] = big
    aggregates = LogAggregates.of(logs, result.pricing.priced, result.period)
    summary: dict[str, Any] = build_summary(replace(result, aggregates=aggregates))
    expected = sum(int(q) for q in logs.loc[logs["type"] == CONSUME, "quota"].tolist())
    assert summary["logs"]["consume"]["quota"] == expected > 2 * big


def test_csv_and_workbook_hold_the_same_guarded_text(tmp_path: Path) -> None:
    hostile = ["#N/A", "#div/0!", "=1+1", " =SUM(A1)", "nul\x00byte", "-2+3", "plain"]
    frame = findings_frame(
        pd.DataFrame(
            {
                "category": ["missing_in_logs"] * len(hostile),
                "severity": ["error"] * len(hostile),
                "source": ["ledger"] * len(hostile),
                "ledger_line": list(range(2, 2 + len(hostile))),
                "token_name": hostile,
                "ledger_quota": [1] * len(hostile),
                "diff_quota": [1] * len(hostile),
            }
        )
    )
    result = make_result()
    final = findings_mod.finalize([frame], result.rules)
    result = replace(result, findings=final)
    rows = _csv(result, tmp_path)
    in_csv = [r["token_name"] for r in sorted(rows, key=lambda r: int(r["ledger_line"]))]
    assert in_csv == [
        "'#N/A",
        "'#div/0!",
        "'=1+1",
        "' =SUM(A1)",
        "nul\ufffdbyte",
        "'-2+3",
        "plain",
    ]
    assert in_csv == [safe_text(h) for h in hostile]
    path = tmp_path / "r.xlsx"
    write_workbook(result, path)
    ws = load_workbook(path)["Discrepancies"]
    fields = [f for f, _ in workbook_mod.finding_layout()]
    lines, tokens = fields.index("ledger_line"), fields.index("token_name")
    in_book = [
        r[tokens] for r in sorted(ws.iter_rows(min_row=2, values_only=True), key=lambda r: r[lines])
    ]
    assert in_book == in_csv


def _open(result: RunResult, fail_on: str = "error") -> RunResult:
    """The same run, but the logs were read ten days before the period ended."""
    period = result.period
    fetched = replace(result.fetch, fetched_at=period.end - timedelta(days=10))
    frames = [result.findings, findings_mod.open_period(period, fetched.fetched_at)]
    found = findings_mod.finalize(frames, result.rules)
    status = "fail" if findings_mod.reaches(found, fail_on) else "pass"
    return replace(result, fetch=fetched, findings=found, fail_on=fail_on, status=status)


def test_an_open_period_fails_and_says_so_everywhere(tmp_path: Path) -> None:
    result = _open(clean_result())
    assert result.status == "fail"  # the gate: an open period cannot pass
    summary: dict[str, Any] = build_summary(result)
    assert summary["open_period"]["open"] is True
    cut = datetime.fromisoformat(summary["open_period"]["cut_off"])
    assert cut < datetime.fromisoformat(summary["period"]["end"])
    assert summary["verdict"] == "INCOMPLETE"
    assert summary["discrepancies"]["open_period"] == {"count": 1, "quota": 0}
    path = tmp_path / "r.xlsx"
    write_workbook(result, path)
    values = [str(c.value) for row in load_workbook(path)["Summary"].iter_rows() for c in row]
    assert "INCOMPLETE" in values
    assert any("OPEN — incomplete period" in v for v in values)
    assert "PASS" not in values
    assert "Open period" in render_markdown(summary)
    # even ungated, an open period is never shown as a pass
    ungated = _open(clean_result(), fail_on="never")
    assert ungated.status == "pass"
    assert build_summary(ungated)["verdict"] == "INCOMPLETE"


def test_a_closed_period_has_no_open_period_finding() -> None:
    result = make_result()
    assert result.period.end <= FETCHED_AT
    assert not len(findings_mod.open_period(result.period, FETCHED_AT))
    assert build_summary(result)["open_period"] == {"open": False, "cut_off": None}


def test_fail_on_never_is_not_gated_not_a_green_pass(tmp_path: Path) -> None:
    result = replace(make_result(), fail_on="never", status="pass")
    path = tmp_path / "r.xlsx"
    write_workbook(result, path)
    ws = load_workbook(path)["Summary"]
    values = [c.value for row in ws.iter_rows() for c in row]
    assert "NOT GATED" in values
    assert "PASS" not in values
    verdict = next(c for row in ws.iter_rows() for c in row if c.value == "NOT GATED")
    assert not verdict.fill.fgColor.rgb.endswith("2E7D32")  # not green
    assert json.loads(json.dumps(build_summary(result)))["verdict"] == "NOT GATED"
