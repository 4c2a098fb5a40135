"""The workbook's summary-table sheets: By model, By day (with its chart), By token, Refunds &
topups and Unreadable rows, each one table with its header in row 1 and a totals row where
the numbers add up."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, cast

import pandas as pd
from openpyxl.chart import LineChart, Reference
from openpyxl.chart.text import RichText
from openpyxl.drawing.text import (
    CharacterProperties,
    Paragraph,
    ParagraphProperties,
    RichTextProperties,
)
from openpyxl.worksheet.pagebreak import Break

from reconcile.core.results import RunResult
from reconcile.report import xlsx
from reconcile.report.tables import by_day, by_model, by_token, refunds_topups, unreadable_rows
from reconcile.report.totals import Money
from reconcile.report.xlsx import Book, Column, fit_width, py_values, write_table

CHUNK_ROWS = 10_000


def _frame_rows(df: pd.DataFrame, cols: Sequence[str]) -> Iterator[list[object]]:
    for start in range(0, len(df), CHUNK_ROWS):
        chunk = df.iloc[start : start + CHUNK_ROWS]
        lists = [py_values(chunk[c]) if c in chunk else [None] * len(chunk) for c in cols]
        yield from ([xlsx.plain(v) for v in row] for row in zip(*lists, strict=True))


def column_widths(
    df: pd.DataFrame, spec: Sequence[tuple[Column, str]], minimum: float = 10
) -> list[float]:
    """Widths that fit each column's header and its longest value (measured, vectorised)."""
    out = []
    for col, key in spec:
        if col.width is not None:
            out.append(col.width)
            continue
        longest = 0
        if col.kind == "datetime":
            longest = 19
        elif col.kind == "amount":
            longest = 12
        elif key in df and len(df):
            if col.kind in ("int", "id"):
                biggest = pd.to_numeric(df[key], errors="coerce").abs().max()
                digits = len(str(int(biggest))) if pd.notna(biggest) else 1
                longest = digits + (digits - 1) // 3 * (col.kind == "int")
            else:
                lengths = df[key].astype("string").str.len()
                longest = int(lengths.max()) if lengths.notna().any() else 0
        out.append(fit_width(col.header, longest, minimum))
    return out


def _money_cols(df: pd.DataFrame, money: Money, cols: Sequence[str]) -> pd.DataFrame:
    """Add `<col>_amount` (exact Decimal, object dtype) for each integer quota column."""
    df = df.copy()
    for col in cols:
        if col in df:
            amounts = [None if q is None else money(int(cast(int, q))) for q in py_values(df[col])]
            df[f"{col}_amount"] = pd.Series(amounts, index=df.index, dtype=object)
    return df


def _simple_table(
    book: Book,
    name: str,
    title: str,
    df: pd.DataFrame,
    spec: Sequence[tuple[Column, str]],
    elsewhere: str = "",
    grid: bool = True,
    total: bool = False,
) -> tuple[Any, xlsx.Table]:
    """A sheet holding one table of `df`'s columns named in `spec`; returns sheet and table.

    `total`: a bold "Total" row under the data, each number column's exact sum.
    """
    ws = book.sheet(name)
    totals = _totals_row(df, spec) if total else None
    table = write_table(
        book,
        ws,
        title,
        [c for c, _ in spec],
        _frame_rows(df, [k for _, k in spec]),
        len(df),
        widths=column_widths(df, spec),
        elsewhere=elsewhere,
        grid=grid,
        totals=totals,
    )
    return ws, table


def _totals_row(df: pd.DataFrame, spec: Sequence[tuple[Column, str]]) -> list[object]:
    """ "Total", then the exact sum of each int and amount column (ints, Decimals)."""
    out: list[object] = []
    for i, (col, key) in enumerate(spec):
        if i == 0:
            out.append("Total")
        elif col.kind == "int" and key in df:
            # exact, also past 64 bits (a column of Python ints)
            out.append(sum(int(cast(int, v)) for v in py_values(df[key]) if v is not None))
        elif col.kind == "amount" and key in df:
            amounts = [Decimal(cast(Decimal, v)) for v in py_values(df[key]) if v is not None]
            out.append(sum(amounts, Decimal(0)))
        else:
            out.append(None)
    return out


def by_model_sheet(book: Book, result: RunResult, money: Money) -> None:
    df = _money_cols(by_model(result), money, ["charged", "expected", "ledger"])
    cur = money.currency
    book_cols: list[tuple[Column, str]] = []
    if result.ledger is not None or result.invoice is not None:
        book_cols = [
            (Column("Ledger rows", "int"), "ledger_rows"),
            (Column("Ledger quota", "int"), "ledger"),
            (Column("Charged − ledger", "int"), "book_diff"),
        ]
    spec = [
        (Column("Model"), "model_name"),
        (Column("Rule(s)"), "rule"),
        (Column("Consume logs", "int"), "logs"),
        (Column("Prompt tokens", "int"), "prompt_tokens"),
        (Column("Completion tokens", "int"), "completion_tokens"),
        (Column("Charged quota", "int"), "charged"),
        (Column("Re-priced logs", "int"), "repriced"),
        (Column("Charged, re-priced logs", "int"), "charged_repriced"),
        (Column("Expected quota", "int"), "expected"),
        (Column("Charged − expected", "int"), "diff"),
        (Column("Pricing mismatches", "int"), "mismatch"),
        (Column("Unpriced or not re-priceable", "int"), "unchecked"),
        *book_cols,
        (Column(f"Charged ({cur})", "amount"), "charged_amount"),
        (Column(f"Expected ({cur})", "amount"), "expected_amount"),
    ]
    if book_cols:
        spec.append((Column(f"Ledger ({cur})", "amount"), "ledger_amount"))
    _simple_table(
        book,
        "By model",
        "Consume logs by model. Expected covers the re-priced logs only; compare it with "
        "'Charged, re-priced logs'.",
        df,
        spec,
        total=True,
    )


#: The spend columns By day and By token share: what was charged, expected, refunded, topped up.
_SPEND_COLUMNS: list[tuple[Column, str]] = [
    (Column("Consume logs", "int"), "logs"),
    (Column("Charged quota", "int"), "charged"),
    (Column("Charged, re-priced logs", "int"), "charged_repriced"),
    (Column("Expected quota", "int"), "expected"),
    (Column("Charged − expected", "int"), "diff"),
    (Column("Refund quota", "int"), "refund"),
    (Column("Topup quota", "int"), "topup"),
]


def by_day_sheet(book: Book, result: RunResult, money: Money) -> None:
    df, has_book, undated = by_day(result)
    df = _money_cols(df, money, ["charged", "expected", "ledger"])
    df["day"] = [date.fromisoformat(d) for d in df["day"]]
    cur = money.currency
    spec: list[tuple[Column, str]] = [
        (Column("Day", "date", width=16), "day"),
        *_SPEND_COLUMNS,
    ]
    if has_book:
        spec += [
            (Column("Ledger quota", "int"), "ledger"),
            (Column("Charged − ledger", "int"), "book_diff"),
        ]
    spec += [
        (Column(f"Charged ({cur})", "amount"), "charged_amount"),
        (Column(f"Expected ({cur})", "amount"), "expected_amount"),
    ]
    if has_book:
        spec.append((Column(f"Ledger ({cur})", "amount"), "ledger_amount"))
    title = f"Per day in {result.period.timezone}. Expected covers the re-priced logs only."
    if undated:
        title += f" {undated:,} ledger rows have no date and are not in this table."
    # no grid: the chart sits below the table
    ws, table = _simple_table(book, "By day", title, df, spec, grid=False, total=True)
    if table.shown:
        amount_cols = [i for i, (c, _) in enumerate(spec, 1) if c.kind == "amount"]
        _add_day_chart(ws, table, amount_cols, money.currency)


def _add_day_chart(ws: Any, table: xlsx.Table, series_cols: Sequence[int], cur: str) -> None:
    chart = LineChart()
    chart.title = f"Charged vs expected vs ledger per day ({cur})"
    chart.y_axis.title = cur
    chart.x_axis.number_format = "mm-dd"
    chart.x_axis.txPr = RichText(  # labels at 45°, so a month of days stays legible
        bodyPr=RichTextProperties(rot=-2_700_000, vert="horz"),
        p=[Paragraph(pPr=ParagraphProperties(defRPr=CharacterProperties(sz=800)))],
    )
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    chart.height = 9
    chart.width = 26
    header = table.first_row - 1
    for col in series_cols:
        ref = Reference(ws, min_col=col, min_row=header, max_row=table.last_row)
        chart.add_data(ref, titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=table.first_row, max_row=table.last_row))
    colours = ["1F4E78", "ED7D31", "2E7D32"]
    for s, colour in zip(chart.series, colours, strict=False):
        s.graphicalProperties.line.solidFill = colour
        s.graphicalProperties.line.width = 22000
        s.smooth = False
    ws.add_chart(chart, f"A{table.last_row + 4}")
    # the chart starts a printed page of its own, so it is never split over two
    ws.row_breaks.append(Break(id=table.last_row + 2))


def by_token_sheet(book: Book, result: RunResult, money: Money) -> None:
    df = _money_cols(by_token(result), money, ["net", "ledger"])
    cur = money.currency
    has_book = result.ledger is not None or result.invoice is not None
    spec: list[tuple[Column, str]] = [
        (Column("Token"), "token_name"),
        (Column("API key refs"), "keys"),
        *_SPEND_COLUMNS,
        (Column("Net spend quota", "int"), "net"),
    ]
    if has_book:
        spec.append((Column("Ledger quota", "int"), "ledger"))
    spec += [
        (Column("Findings", "int"), "findings"),
        (Column(f"Net spend ({cur})", "amount"), "net_amount"),
    ]
    if has_book:
        spec.append((Column(f"Ledger ({cur})", "amount"), "ledger_amount"))
    _simple_table(
        book,
        "By token",
        "By token (API keys by reference only). Net spend = consume − refund.",
        df,
        spec,
        total=True,
    )


def refunds_sheet(book: Book, result: RunResult, money: Money) -> None:
    df = _money_cols(refunds_topups(result), money, ["quota"])
    df["time"] = [
        pd.Timestamp(int(t), unit="s", tz="UTC").tz_convert(result.period.tz).isoformat()
        for t in df["created_at"]
    ]
    cur = money.currency
    spec: list[tuple[Column, str]] = [
        (Column("Log id", "id"), "id"),
        (Column("Time", "datetime", width=20), "time"),
        (Column("Type"), "type_name"),
        (Column("API key ref"), "key_ref"),
        (Column("Token"), "token_name"),
        (Column("Model"), "model_name"),
        (Column("Quota", "int"), "quota"),
        (Column(f"Amount ({cur})", "amount"), "quota_amount"),
    ]
    if result.ledger is not None:
        spec.append((Column("Ledger quota", "int"), "ledger"))
    spec.append((Column("Content", width=50), "content"))
    _simple_table(
        book,
        "Refunds & topups",
        f"Refund and topup logs in time order ({result.period.timezone}). Refunds reduce "
        "spend; topups are credit bought.",
        df,
        spec,
        elsewhere="Every log is in the run's snapshot.",
    )


def unreadable_sheet(book: Book, result: RunResult) -> None:
    df = unreadable_rows(result)
    spec: list[tuple[Column, str]] = [
        (Column("Source"), "source"),
        (Column("File"), "file"),
        (Column("Line", "id", width=8), "line"),
        (Column("Field"), "field"),
        (Column("Reason", width=40), "reason"),
        (Column("Raw row", width=60), "raw"),
    ]
    title = (
        "Ledger or invoice rows that could not be read (line numbers count the header as 1)."
        if len(df)
        else "Every ledger and invoice row was read."
    )
    if result.ledger is None and result.invoice is None:
        title = "No ledger or invoice was given."
    _simple_table(
        book,
        "Unreadable rows",
        title,
        df,
        spec,
        elsewhere="Every unreadable row is also in discrepancies.csv (unreadable_row).",
    )
