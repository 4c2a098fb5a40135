"""reconciliation-<period>.xlsx: the spreadsheet a reviewer works in.

Sheets: Summary (verdict, what to act on, totals, discrepancies by category, each linked to
its block of rows), then Discrepancies (every finding once, grouped by category, largest
money at stake first within each), By model, By day (with a chart), By token, Refunds &
topups, Rules and Unreadable rows (table_sheets.py, rules_sheet.py).

The writer streams (openpyxl write-only), so memory does not grow with the number of
rows; a sheet that would pass the row limit is capped with a note (discrepancies.csv always
has every row). Writing decides nothing: every figure comes from the RunResult.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from openpyxl.utils import get_column_letter

from reconcile.core.results import RunResult
from reconcile.core.schema import CATEGORIES, OUTPUT_COLUMNS
from reconcile.report import fastrows, table_sheets, xlsx
from reconcile.report.rules_sheet import write_rules_sheet
from reconcile.report.summary_sheet import write_summary_sheet
from reconcile.report.totals import money_of
from reconcile.report.xlsx import Book, Column, py_values, write_table

CHUNK_ROWS = 5_000
DISCREPANCIES = "Discrepancies"
FULL_CSV = "Every row is in discrepancies.csv."

#: The Discrepancies sheet's columns in reading order, under headers for people: what the
#: finding is and where (frozen on the left), both sides' money, the signed differences and
#: the action, then the detail. discrepancies.csv has the same columns under their field
#: names (a column a stage adds appears at the end of both).
REVIEW_LAYOUT: list[tuple[str, str, str]] = [
    ("category", "Category", "text"),
    ("log_id", "Log id", "id"),
    ("ledger_line", "Ledger line", "id"),
    ("severity", "Severity", "severity"),
    ("created_at", "Time", "datetime"),
    ("type", "Type", "text"),
    ("token_name", "Token", "text"),
    ("model_name", "Model", "text"),
    ("log_amount", "Gateway amount", "amount_fine"),
    ("ledger_amount", "Ledger amount", "amount_fine"),
    ("contract_diff_amount", "Gateway − contract", "amount_fine"),
    ("books_diff_amount", "Gateway − books", "amount_fine"),
    ("action", "Action", "wrap"),
    ("explanation", "Explanation", "wrap"),
    ("diff_amount", "At stake", "amount_fine"),
    ("source", "Found by", "text"),
    ("path", "Billing path", "text"),
    ("matched_on", "Matched on", "text"),
    ("request_id", "Request id", "text"),
    ("group", "Group", "text"),
    ("log_quota", "Gateway quota", "int"),
    ("ledger_quota", "Ledger quota", "int"),
    ("expected_quota", "Contract quota", "int"),
    ("contract_diff_quota", "Gateway − contract (quota)", "int"),
    ("books_diff_quota", "Gateway − books (quota)", "int"),
    ("diff_quota", "At stake (quota)", "int"),
    ("currency", "Currency", "text"),
]
#: Columns printed (the rest stay on screen): one landscape page wide stays legible.
PRINTED_COLUMNS = 13
#: Left columns that stay in view while scrolling right: category and log id.
FROZEN = "C2"
_WIDTHS = {"action": 60.0, "explanation": 70.0, "created_at": 19.0, "severity": 9.0}


def finding_layout() -> list[tuple[str, Column]]:
    """(field, column) of the Discrepancies sheet: REVIEW_LAYOUT, then any other column."""
    known = {f for f, _, _ in REVIEW_LAYOUT}
    extra = [f for f in OUTPUT_COLUMNS if f not in known]
    layout = [(f, Column(h, k, _WIDTHS.get(f))) for f, h, k in REVIEW_LAYOUT]
    layout += [(f, Column(f.replace("_", " ").capitalize())) for f in extra]
    return layout


def finding_columns() -> list[Column]:
    return [c for _, c in finding_layout()]


def finding_rows(findings: pd.DataFrame, order: np.ndarray | None = None) -> Iterator[list[object]]:
    """Rows of plain Python values (None for NA), in `order` (row positions; default: as
    given), a chunk at a time: only one chunk is ever copied out of the table."""
    names = [f for f, _ in finding_layout()]
    positions = np.arange(len(findings)) if order is None else order
    for start in range(0, len(positions), CHUNK_ROWS):
        chunk = findings.iloc[positions[start : start + CHUNK_ROWS]]
        cols = [py_values(chunk[n]) if n in chunk else [None] * len(chunk) for n in names]
        yield from (list(row) for row in zip(*cols, strict=True))


def by_category_blocks(findings: pd.DataFrame) -> tuple[np.ndarray, dict[str, int]]:
    """The row positions that group the findings by category (in CATEGORIES order, then any
    other by name; money at stake first within each, as finalize sorted them) and the sheet
    row where each category's block starts. Positions, not a reordered copy of the table:
    a copy of 100,000 findings is tens of MB."""
    cats = findings["category"].astype("string").fillna("")
    names = sorted(set(cats.unique()) - set(CATEGORIES))
    rank = {c: i for i, c in enumerate([*CATEGORIES, *names])}
    order = np.argsort(cats.map(rank).to_numpy(dtype="int64"), kind="stable")
    starts: dict[str, int] = {}
    for i, cat in enumerate(cats.iloc[order].tolist()):
        starts.setdefault(str(cat), xlsx.HEAD_ROWS + 1 + i)
    return order, starts


def _findings_sheet(
    book: Book, title: str, findings: pd.DataFrame, order: np.ndarray | None = None
) -> None:
    """Every finding once, in `order`: header and sheet settings through openpyxl, the rows
    spliced in as XML when the workbook is saved (fastrows: the sheet is most of a large
    report's cost)."""
    ws = book.sheet(DISCREPANCIES)
    layout = finding_layout()
    columns = [c for _, c in layout]
    ws.sheet_properties.tabColor = "C62828"
    total = len(findings)
    shown = xlsx.rows_fit(total)
    widths = table_sheets.column_widths(findings, [(c, f) for f, c in layout], minimum=8)
    write_table(
        book,
        ws,
        title,
        columns,
        iter(()),
        0,
        widths=widths,
        elsewhere=FULL_CSV,
        freeze=FROZEN,
    )
    last = xlsx.HEAD_ROWS + shown
    ws.auto_filter.ref = f"A{xlsx.HEAD_ROWS}:{get_column_letter(len(columns))}{last}"
    ws.print_area = f"A1:{get_column_letter(PRINTED_COLUMNS)}{last}"
    rows = fastrows.xml_rows(
        book, ws, columns, finding_rows(findings, order), xlsx.HEAD_ROWS + 1, shown, widths
    )
    if shown < total:
        note = (
            f"Showing the first {shown:,} of {total:,} rows: a sheet holds at most "
            f"{xlsx.SHEET_ROW_LIMIT:,} rows. {FULL_CSV}"
        )
        book.notes.append(f"Sheet '{ws.title}' is capped: {note}")
        alert = fastrows.style_attr(book, ws, "alert")
        rows = itertools.chain(rows, [fastrows.note_row(last + 1, note, alert)])
    book.splices[ws.title] = rows


def write_workbook(result: RunResult, path: Path) -> None:
    """Write the review workbook for a computed run to `path` (bytes depend only on inputs)."""
    money = money_of(result)
    book = Book(
        result.fetch.fetched_at,
        title=f"Reconciliation {result.period.label}",
        currency=money.currency,
    )
    summary_ws = book.sheet("Summary")  # first tab; filled last, once caps are known
    order, starts = by_category_blocks(result.findings)
    cur = money.currency
    tz = result.period.timezone
    _findings_sheet(
        book,
        f"All {len(order):,} findings, by category, largest money at stake first. "
        f"Times in {tz}; amounts in {cur}.",
        result.findings,
        order,
    )
    table_sheets.by_model_sheet(book, result, money)
    table_sheets.by_day_sheet(book, result, money)
    table_sheets.by_token_sheet(book, result, money)
    table_sheets.refunds_sheet(book, result, money)
    write_rules_sheet(book, result)
    table_sheets.unreadable_sheet(book, result)
    links = {cat: f"A{row}" for cat, row in starts.items()}
    write_summary_sheet(book, summary_ws, result, money, links, DISCREPANCIES)
    book.save(path)
