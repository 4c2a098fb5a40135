"""What reading a ledger and an invoice share: one skeleton, two sets of columns.

`open_book` reads the file, binds its columns, refuses a file missing a required column
(naming the file, header line and column) and starts the row problems; the loaders then read
their own columns; `close_book` turns what they read into a `Ledger` with the unreadable
rows and the notes a reviewer needs about how the file was read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from reconcile.books.cells import MoneyText, clean, detect_decimal, money_text, texts
from reconcile.books.columns import (
    Binding,
    bind_columns,
    header_matcher,
    load_profile,
    merge_maps,
)
from reconcile.books.csvload import CsvTable, read_table
from reconcile.books.problems import Problems, row_shape
from reconcile.core.results import Ledger
from reconcile.errors import InputError
from reconcile.pricing.rules import ColumnMap


class Cells:
    """Each bound column's cleaned cells, read once (and split as money once)."""

    def __init__(self, table: CsvTable, bind: Binding) -> None:
        self.table = table
        self.bind = bind
        self._text: dict[str, Any] = {}
        self._money: dict[str, MoneyText] = {}

    def has(self, name: str) -> bool:
        return name in self.bind.index

    def text(self, name: str) -> Any:
        if name not in self._text:
            self._text[name] = clean(self.table.column(self.bind.index[name]))
        return self._text[name]

    def money(self, name: str) -> MoneyText:
        if name not in self._money:
            self._money[name] = money_text(self.text(name))
        return self._money[name]

    def strings(self, name: str) -> Any:
        """A pandas "string" array, empty cells NA; all NA when the file has no such column."""
        if name not in self.bind.index:
            return texts(pa.nulls(self.table.rows, pa.string()))
        return texts(self.text(name))


@dataclass
class Book:
    """An opened ledger or invoice file: its cells, settings and the row problems so far."""

    kind: str  # "ledger" | "invoice": also the rules' table its settings come from
    settings: ColumnMap
    cells: Cells
    problems: Problems
    decimal: str  # the decimal separator of its money column
    notes: list[str]

    @property
    def table(self) -> CsvTable:
        return self.cells.table


def open_book(
    path: Path,
    kind: str,
    rules_map: ColumnMap,
    profile: Path | None,
    canonical: tuple[str, ...],
    required: tuple[tuple[str, ...], ...],
    header_names: tuple[str, ...],
    raw: bytes | None = None,
) -> Book:
    """Read and bind the file (or `raw`, a piece of it with its header); InputError when it
    lacks one of each `required` group."""
    settings = merge_maps(rules_map, load_profile(profile) if profile is not None else None)
    table = read_table(
        path,
        encoding=settings.encoding,
        delimiter=settings.delimiter,
        is_header=header_matcher(settings.columns, canonical, header_names),
        raw=raw,
    )
    bind = bind_columns(
        table.header,
        settings.columns,
        canonical,
        path=table.path,
        line=table.header_line,
        setting=kind,
    )
    cells = Cells(table, bind)
    for group in required:
        if not any(cells.has(name) for name in group):
            raise missing_column(cells, group[0], " or ".join(group), kind)
    problems = Problems(table.rows)
    row_shape(table, problems)
    decimal, notes = _money_style(cells, settings)
    return Book(kind, settings, cells, problems, decimal, notes)


def close_book(
    book: Book, rows: pd.DataFrame, unreadable: pd.DataFrame, currency: str, match_key: str
) -> Ledger:
    """The `Ledger` of a book whose rows have been read (good rows and unreadable ones)."""
    table, bind = book.table, book.cells.bind
    return Ledger(
        kind=book.kind,
        path=str(table.path),
        sha256=table.sha256,
        rows=rows,
        unreadable=unreadable,
        currency=currency,
        columns=dict(bind.names),
        ignored_columns=list(bind.ignored),
        encoding=table.encoding,
        delimiter=table.delimiter,
        match_key=match_key,
        blank_rows=table.blank_rows,
        warnings=_describe_reading(book),
    )


def missing_column(cells: Cells, name: str, what: str, setting: str) -> InputError:
    table = cells.table
    shown = ", ".join(repr(h) for h in table.header[:20]) or "none"
    return InputError(
        f"no {what} column among the file's columns ({shown}); name yours in the rules' "
        f'[{setting}.columns] or a profile\'s [columns], e.g. "Their Name" = "{name}"',
        file=table.path,
        line=table.header_line,
        field=name,
    )


def _money_style(cells: Cells, settings: ColumnMap) -> tuple[str, list[str]]:
    """The decimal separator of the file: the setting, or detected from its money column."""
    if settings.decimal:
        return settings.decimal, []
    name = "quota" if cells.has("quota") else "amount"
    if not cells.has(name):
        return ".", []
    style, why = detect_decimal(cells.money(name), cells.table.delimiter)
    return style, [f"{name}: {why}"] if why else []


def _describe_reading(book: Book) -> list[str]:
    """What a reviewer should know about how the file was read."""
    table, bind, kind = book.table, book.cells.bind, book.kind
    out: list[str] = []
    if table.encoding not in ("utf-8", "utf-8-sig"):
        out.append(f"{kind}: read as {table.encoding}")
    if table.preamble_lines:
        out.append(
            f"{kind}: {table.preamble_lines} line(s) above the header (line "
            f"{table.header_line}) skipped"
        )
    if table.blank_rows:
        out.append(f"{kind}: {table.blank_rows} empty row(s) skipped")
    if bind.ignored:
        out.append(f"{kind}: columns not used: {', '.join(bind.ignored)}")
    out += [f"{kind}: {note}" for note in book.notes]
    return out
