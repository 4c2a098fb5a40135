"""The review workbook: structure, formats, links, safety against formulas, caps, same bytes."""

from __future__ import annotations

import re
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from report_helpers import (
    FETCHED_AT,
    HOSTILE,
    clean_result,
    empty_result,
    invoice_result,
    make_result,
)

from reconcile.core.results import RunResult
from reconcile.core.schema import CATEGORIES, CONSUME, OUTPUT_COLUMNS
from reconcile.report import workbook as workbook_mod
from reconcile.report import xlsx
from reconcile.report.safe import CELL_CHARS, cell_text, safe_text
from reconcile.report.workbook import write_workbook

GUARDED = {safe_text(h): h for h in HOSTILE}
TABLE_SHEETS = ["By model", "By day", "By token", "Refunds & topups", "Rules", "Unreadable rows"]


def _write(tmp_path: Path, result: RunResult | None = None, name: str = "r.xlsx") -> Path:
    path = tmp_path / name
    write_workbook(result if result is not None else make_result(), path)
    return path


@pytest.fixture(scope="module")
def book_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("wb"))


@pytest.fixture(scope="module")
def book(book_path: Path) -> Any:
    return load_workbook(book_path)


def _values(ws: Any) -> list[object]:
    return [c.value for row in ws.iter_rows() for c in row if c.value is not None]


def _find(ws: Any, text: str) -> Any:
    for row in ws.iter_rows():
        for c in row:
            if c.value == text:
                return c
    raise AssertionError(f"{text!r} not in sheet {ws.title}")


def test_sheets_in_reading_order(book: Any) -> None:
    # each finding is written once: categories are blocks of the Discrepancies sheet
    assert book.sheetnames == ["Summary", "Discrepancies", *TABLE_SHEETS]


def _header(ws: Any) -> list[object]:
    return [c.value for c in ws[1]]


def test_discrepancies_sheet_is_the_csv_table_with_formats(book: Any, book_path: Path) -> None:
    result = make_result()
    ws = book["Discrepancies"]
    header = _header(ws)
    fields = [f for f, _ in workbook_mod.finding_layout()]
    assert sorted(fields) == sorted(OUTPUT_COLUMNS)  # the CSV's columns, readable headers
    assert header[:4] == ["Category", "Log id", "Ledger line", "Severity"]
    assert ws.freeze_panes == "C2"  # category and log id stay in view
    n = len(result.findings)
    assert ws.auto_filter.ref == f"A1:{get_column_letter(len(header))}{n + 1}"
    assert ws.max_row == n + 1
    assert ws.print_title_rows == "$1:$1"
    col = {f: i for i, f in enumerate(fields)}
    # grouped by category in CATEGORIES order, money at stake first within each
    rank = {c: i for i, c in enumerate(CATEGORIES)}
    expected = result.findings.assign(r=result.findings["category"].map(rank))
    expected = expected.sort_values("r", kind="mergesort")
    ids = [ws.cell(row=r, column=col["log_id"] + 1).value for r in range(2, n + 2)]
    assert ids == [None if pd.isna(v) else int(v) for v in expected["log_id"]]
    first = ws[2]
    assert first[col["log_quota"]].number_format == "#,##0;[Red]-#,##0"
    assert first[col["diff_amount"]].number_format == '#,##0.0000 "USD";[Red]-#,##0.0000 "USD"'
    assert first[col["diff_amount"]].value == float(expected["diff_amount"].iloc[0])
    created = first[col["created_at"]]
    assert isinstance(created.value, datetime)
    assert created.number_format == "yyyy-mm-dd hh:mm:ss"
    severity = {
        r[col["severity"]].value: r[col["severity"]].fill.fgColor.rgb
        for r in ws.iter_rows(min_row=2)
    }
    assert severity["error"].endswith("FFC7CE")
    assert severity["warning"].endswith("FFEB9C")
    # Widths fit: the longest token name is not cut to a default width.
    width = ws.column_dimensions[get_column_letter(col["token_name"] + 1)].width
    assert width >= len(HOSTILE[0]) + 1
    # pandas reads the table without options: the header row is the first row
    frame = pd.read_excel(book_path, sheet_name="Discrepancies")
    assert list(frame.columns) == header
    assert len(frame) == n


def test_each_category_link_opens_its_block_of_rows(book: Any) -> None:
    result = make_result()
    summary = book["Summary"]
    links = {
        c.value: c.hyperlink.location
        for row in summary.iter_rows()
        for c in row
        if c.hyperlink is not None
    }
    assert links["All 25 findings"] == "'Discrepancies'!A1"
    ws = book["Discrepancies"]
    for cat, rows in result.findings.groupby("category"):
        sheet, cell = links[cat].split("!")
        assert sheet == "'Discrepancies'"
        start = int(cell[1:])
        block = [ws.cell(row=r, column=1).value for r in range(start, start + len(rows))]
        assert block == [cat] * len(rows)
        assert ws.cell(row=start - 1, column=1).value != cat  # the block starts there
    assert "not_repriceable" not in links  # nothing to open


def test_signed_differences_and_actions_in_the_sheet(book: Any) -> None:
    ws = book["Discrepancies"]
    fields = [f for f, _ in workbook_mod.finding_layout()]
    col = {f: i for i, f in enumerate(fields)}
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    pricing = [r for r in rows if r[0] == "pricing_mismatch"]
    assert pricing
    for r in pricing:
        signed = r[col["contract_diff_quota"]]
        assert signed == r[col["log_quota"]] - r[col["expected_quota"]]
        assert abs(signed) == r[col["diff_quota"]]
        assert r[col["action"]]
    missing = [r for r in rows if r[0] == "missing_in_logs"]
    assert all(r[col["books_diff_quota"]] == -r[col["ledger_quota"]] for r in missing)


def test_summary_states_verdict_period_and_exact_totals(book: Any) -> None:
    result = make_result()
    ws = book["Summary"]
    verdict = _find(ws, "FAIL")
    assert verdict.fill.fgColor.rgb.endswith("C62828")
    assert verdict.font.bold
    assert verdict.font.color.rgb.endswith("FFFFFF")
    values = [str(v) for v in _values(ws)]
    assert any("Asia/Shanghai" in v and "2026-10-01 00:00" in v for v in values)
    assert FETCHED_AT.isoformat() in values  # the fetch time, not the time of writing
    assert any("key-aaaa1111" in v for v in values)
    label = _find(ws, "Gateway charged, all consume logs")
    row = ws[label.row]
    consume = int(result.fetch.logs.loc[result.fetch.logs["type"] == CONSUME, "quota"].sum())
    assert row[2].value == consume
    assert Decimal(str(row[3].value)) == Decimal(consume) / 500000
    expected = ws[_find(ws, "Contract expected, re-priced logs").row]
    assert expected[2].value == result.pricing.expected_quota
    assert expected[4].value == 7  # gateway charged 7 quota more than the rules give
    total = ws[_find(ws, "Total").row]
    assert total[2].value == len(result.findings)
    assert total[3].value is None  # no money-at-stake total across overlapping categories
    inputs = _find(ws, "rules/example.toml")
    assert ws.cell(row=inputs.row, column=7).value == "ab" * 32


def test_no_text_from_data_is_ever_a_formula(book_path: Path, book: Any) -> None:
    with zipfile.ZipFile(book_path) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/sheet")]
        assert sheets
        for name in sheets:
            xml = z.read(name).decode("utf-8")
            assert not re.search(r"<f[ >]", xml), name
            assert 't="e"' not in xml, name  # "#N/A" is not an error value either
    seen = set()
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for c in row:
                assert c.data_type != "f", (ws.title, c.coordinate, c.value)
                if c.value in GUARDED:
                    assert c.data_type == "s"
                    seen.add(GUARDED[c.value])
    assert seen == set(HOSTILE)  # every planted name was written, as the text it is
    refunds = book["Refunds & topups"]
    assert "'=cmd|' /C calc'!A0 refund" in _values(refunds)  # the CSV's text exactly


def test_by_day_has_every_day_totals_and_a_chart(book: Any) -> None:
    result = make_result()
    ws = book["By day"]
    header = [c.value for c in ws[1]]
    days = [r[0].value for r in ws.iter_rows(min_row=2, max_row=32)]
    assert len(days) == 31
    assert days[0].date().isoformat() == "2026-10-01"
    assert ws["A2"].number_format == "yyyy-mm-dd"  # no weekday
    charged = header.index("Charged quota")
    logs = result.fetch.logs
    consume = int(logs.loc[logs["type"] == CONSUME, "quota"].sum())
    assert sum(ws.cell(row=r, column=charged + 1).value for r in range(2, 33)) == consume
    assert ws.cell(row=33, column=1).value == "Total"
    assert ws.cell(row=33, column=charged + 1).value == consume
    expected = header.index("Expected quota")
    assert (
        sum(ws.cell(row=r, column=expected + 1).value for r in range(2, 33))
        == result.pricing.expected_quota
    )
    assert [b.id for b in ws.row_breaks.brk] == [34]  # the chart prints on a page of its own
    charts = ws._charts
    assert len(charts) == 1
    chart = charts[0]
    assert type(chart).__name__ == "LineChart"
    assert len(chart.series) == 3  # charged, expected, ledger
    refs = [s.val.numRef.f for s in chart.series]
    assert all(r.startswith("'By day'!") for r in refs)


def test_by_model_and_by_token_add_up(book: Any) -> None:
    result = make_result()
    logs = result.fetch.logs
    consume = int(logs.loc[logs["type"] == CONSUME, "quota"].sum())
    for name in ("By model", "By token"):
        ws = book[name]
        header = [c.value for c in ws[1]]
        col = header.index("Charged quota") + 1
        assert sum(ws.cell(row=r, column=col).value or 0 for r in range(2, ws.max_row)) == consume
        assert ws.cell(row=ws.max_row, column=1).value == "Total"
        assert ws.cell(row=ws.max_row, column=col).value == consume
        assert ws.freeze_panes == "A2"
        assert ws.auto_filter.ref.startswith("A1:")
    model = book["By model"]
    header = [c.value for c in model[1]]
    col = header.index("Expected quota") + 1
    assert model.cell(row=model.max_row, column=col).value == result.pricing.expected_quota
    # one sign convention: gateway minus books
    charged, ledger, diff = (
        header.index(h) for h in ("Charged quota", "Ledger quota", "Charged − ledger")
    )
    for row in model.iter_rows(min_row=2, values_only=True):
        assert row[diff] == (row[charged] or 0) - (row[ledger] or 0)


def test_rules_and_unreadable_rows_sheets(book: Any) -> None:
    rules = _values(book["Rules"])
    for text in ("gpt-4o*", "gpt-4o", "'+1", "rules/example.toml", "vip", "CNY"):
        assert text in rules
    ws = book["Unreadable rows"]
    assert [c.value for c in ws[1]] == ["Source", "File", "Line", "Field", "Reason", "Raw row"]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert [r[2] for r in rows] == [34, 35]
    assert rows[0][5].startswith("1200;2026-10-02;=HYPERLINK(")
    assert rows[1][5] == "x\ufffdy"  # a control character XML cannot hold, shown not dropped


def test_a_clean_run_passes_with_empty_tables(tmp_path: Path) -> None:
    wb = load_workbook(_write(tmp_path, clean_result()))
    assert wb.sheetnames == ["Summary", "Discrepancies", *TABLE_SHEETS]
    verdict = _find(wb["Summary"], "PASS")
    assert verdict.fill.fgColor.rgb.endswith("2E7D32")
    ws = wb["Discrepancies"]
    assert ws.max_row == 1
    assert ws.auto_filter.ref.startswith("A1:")
    assert _find(wb["Summary"], "No ledger or invoice was given.")  # the sheet's caption


def test_amounts_follow_the_report_currency(tmp_path: Path) -> None:
    wb = load_workbook(_write(tmp_path, make_result(currency="CNY")))
    ws = wb["Summary"]
    assert _find(ws, "Amount (CNY)")
    row = ws[_find(ws, "Gateway charged, all consume logs").row]
    assert Decimal(str(row[3].value)) == Decimal("6.696302")  # 465,021 quota at 7.2 CNY/USD
    ws = wb["Discrepancies"]
    currency = [c.value for c in ws[1]].index("Currency")
    assert ws.cell(row=2, column=currency + 1).value == "CNY"
    assert row[3].number_format == '#,##0.00 "CNY";[Red]-#,##0.00 "CNY"'


def test_a_sheet_over_the_row_limit_is_capped_with_a_visible_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xlsx, "SHEET_ROW_LIMIT", 12)
    result = make_result()
    wb = load_workbook(_write(tmp_path, result))
    ws = wb["Discrepancies"]
    assert ws.max_row == 12
    shown = 12 - 2  # header, closing note
    note = ws["A12"].value
    assert f"Showing the first {shown} of {len(result.findings)} rows" in note
    assert "discrepancies.csv" in note
    assert ws.auto_filter.ref.endswith(str(1 + shown))
    notes = [v for v in _values(wb["Summary"]) if "capped" in str(v)]
    assert any("Discrepancies" in str(v) for v in notes)
    # A sheet under the limit is whole.
    assert wb["Unreadable rows"].max_row == 1 + 2


def test_same_inputs_give_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = make_result()
    first = _write(tmp_path, result, "a.xlsx")
    import time

    monkeypatch.setattr(time, "time", lambda: 1_930_000_000.0)  # zipfile's clock, years later
    second = _write(tmp_path, result, "b.xlsx")
    assert first.read_bytes() == second.read_bytes()
    stamp = FETCHED_AT.astimezone(UTC)
    with zipfile.ZipFile(first) as z:
        assert {i.date_time[:3] for i in z.infolist()} == {(stamp.year, stamp.month, stamp.day)}
        core = z.read("docProps/core.xml").decode()
    assert "2026-10-31T19:04:05Z" in core
    assert re.search(r"<dc:creator>reconcile</dc:creator>", core)


def test_cell_text_keeps_within_excel_limits() -> None:
    long = "x" * (CELL_CHARS + 50)
    out = cell_text(long)
    assert len(out) == CELL_CHARS
    assert out.endswith("[truncated]")
    assert cell_text("a\x00b\x1fc") == "a\ufffdb\ufffdc"
    assert cell_text("tab\tand\nnewline") == "tab\tand\nnewline"


def test_findings_stream_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = make_result()
    whole = _write(tmp_path, result, "a.xlsx")
    monkeypatch.setattr(workbook_mod, "CHUNK_ROWS", 4)
    chunked = _write(tmp_path, result, "b.xlsx")
    assert whole.read_bytes() == chunked.read_bytes()


def test_refunds_and_topups_list_each_log_with_its_ledger_row(book: Any) -> None:
    result = make_result()
    ws = book["Refunds & topups"]
    header = [c.value for c in ws[1]]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert [r[header.index("Type")] for r in rows] == ["topup", "refund", "refund"]
    assert [r[header.index("Quota")] for r in rows] == [5_000_000, 2500, 1200]
    assert all(r[header.index("Ledger quota")] == r[header.index("Quota")] for r in rows)
    assert len(rows) == int(result.fetch.logs["type"].isin([1, 6]).sum())


def test_an_invoice_is_compared_by_model_and_by_day(tmp_path: Path) -> None:
    result = invoice_result()
    assert result.invoice is not None
    wb = load_workbook(_write(tmp_path, result))
    summary = wb["Summary"]
    row = summary[_find(summary, "Invoice, consume rows").row]
    assert row[2].value == result.invoice.quota
    day = wb["By day"]
    header = [c.value for c in day[1]]
    col = header.index("Ledger quota") + 1
    assert sum(day.cell(row=r, column=col).value for r in range(2, 33)) == result.invoice.quota
    model = wb["By model"]
    header = [c.value for c in model[1]]
    col = header.index("Ledger quota") + 1
    total = sum(model.cell(row=r, column=col).value or 0 for r in range(2, model.max_row))
    assert total == result.invoice.quota
    assert "Ledger quota" not in [c.value for c in wb["Refunds & topups"][1]]


def test_a_period_without_logs_still_gives_a_whole_workbook(tmp_path: Path) -> None:
    wb = load_workbook(_write(tmp_path, empty_result()))
    assert wb.sheetnames == ["Summary", "Discrepancies", *TABLE_SHEETS]
    day = wb["By day"]
    assert day.max_row == 1 + 31 + 1  # every day of the month, all zero, and the total
    assert {day.cell(row=r, column=3).value for r in range(2, 34)} == {0}
    assert wb["By model"].max_row == 2  # header and total
    assert _find(wb["Summary"], "PASS")


def test_rules_sheet_states_prices_per_million_tokens_and_per_call(tmp_path: Path) -> None:
    for currency, rate in (("USD", 1), ("CNY", Decimal("7.2"))):
        wb = load_workbook(_write(tmp_path, make_result(currency=currency), f"{currency}.xlsx"))
        ws = wb["Rules"]
        header = [c.value for c in ws[_find(ws, "Match").row]]
        assert header[1] == f"Input ({currency} per 1M tokens)"
        glob = [c.value for c in ws[_find(ws, "gpt-4o*").row]]
        # ratio 1.25 at 500,000 quota per USD: 1M tokens cost 2.50 USD, output 4x that
        assert Decimal(str(glob[1])) == Decimal("2.5") * rate
        assert Decimal(str(glob[2])) == Decimal(10) * rate
        per_call = [c.value for c in ws[_find(ws, "'+1").row]]
        assert per_call[1] is None
        assert Decimal(str(per_call[5])) == Decimal("0.04") * rate
    assert "USD (1 USD = 1 USD)" not in [str(v) for v in _values(ws)]


def test_wrapped_actions_get_the_rows_height_they_need(book: Any) -> None:
    ws = book["Discrepancies"]
    fields = [f for f, _ in workbook_mod.finding_layout()]
    wrapped = [fields.index(f) + 1 for f in ("action", "explanation")]
    widths = [ws.column_dimensions[get_column_letter(c)].width for c in wrapped]
    for r in range(2, ws.max_row + 1):
        texts = [ws.cell(row=r, column=c).value or "" for c in wrapped]
        height = ws.row_dimensions[r].height
        if any(len(t) > w * 1.5 for t, w in zip(texts, widths, strict=True)):
            assert height is not None
            assert height >= 30, (r, texts)  # two lines at least: never overlapping text
        elif all(len(t) < w for t, w in zip(texts, widths, strict=True)):
            assert height is None  # one line: the default height
