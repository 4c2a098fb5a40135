"""discrepancies.csv: one row per finding, the Discrepancies sheet's columns, safe to open.

Encoding: UTF-8 with a byte-order mark, because Excel reads a CSV without one in the legacy
code page and garbles non-ASCII token and model names; pandas skips the mark by itself, and
Python's csv module does with `encoding="utf-8-sig"`. Lines end in CRLF (RFC 4180).
Text goes through the same guard as the workbook's cells (safe.py: a formula or an error
literal gets a leading `'`, control characters become U+FFFD), so both files say the same;
numbers are written as plain numbers and money as exact decimal text. Signs: see
core/findings.py (gateway minus contract, gateway minus books; refunds negative).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pandas as pd

from reconcile.core.money import is_money
from reconcile.core.schema import OUTPUT_COLUMNS
from reconcile.report.safe import safe_text
from reconcile.report.xlsx import py_values

COLUMNS = OUTPUT_COLUMNS
ENCODING = "utf-8-sig"
CHUNK_ROWS = 5_000


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


def csv_rows(findings: pd.DataFrame) -> Iterator[list[object]]:
    """The findings as CSV cells, a chunk at a time so memory does not grow with the table."""
    for start in range(0, len(findings), CHUNK_ROWS):
        chunk = findings.iloc[start : start + CHUNK_ROWS]
        cols: list[list[object]] = []
        for name in COLUMNS:
            if name not in chunk:
                cols.append([None] * len(chunk))
                continue
            series = chunk[name]
            if (
                series.dtype == object
                or is_money(series)
                or pd.api.types.is_integer_dtype(series.dtype)
            ):
                cols.append(py_values(series))  # Decimal money, integer quota and ids
            else:
                cols.append(py_values(series.astype("string")))
        for row in zip(*cols, strict=True):
            yield [_cell(v) for v in row]


def write_discrepancies_csv(findings: pd.DataFrame, path: Path) -> None:
    """Write every finding (never capped) in the order given: money at stake first."""
    with Path(path).open("w", encoding=ENCODING, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(csv_rows(findings))
