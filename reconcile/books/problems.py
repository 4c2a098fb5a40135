"""Why rows could not be read, one reason per row, and how they become findings.

A row that cannot be read never stops the run and is never dropped: it is kept with its
line, field, reason and text, and reported as an `unreadable_row` finding. When the row as a
whole cannot be trusted (more fields than the header, an unclosed quote), the reason says so
and the cell-by-cell complaints that follow from it are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from reconcile.books.cells import BoolArray, IntArray
from reconcile.books.csvload import CsvTable
from reconcile.core.results import Ledger
from reconcile.core.schema import SEVERITY, UNREADABLE_ROW, findings_frame

#: The field named when the row as a whole is unreadable.
ROW = "(row)"


class Problems:
    """Why each row could not be read: the first bad field in column order, and the others."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.first = np.full(n, -1, dtype=np.int32)
        self._entries: list[tuple[str, BoolArray, Callable[[int], str]]] = []

    def add(self, field: str, bad: BoolArray, reason: str | Callable[[int], str]) -> None:
        if not bad.any():
            return
        explain: Callable[[int], str] = (lambda _row: reason) if isinstance(reason, str) else reason
        k = len(self._entries)
        self._entries.append((field, bad, explain))
        self.first[bad & (self.first < 0)] = k

    def on(self, field: str) -> BoolArray:
        """Rows with a problem in `field`."""
        out = np.zeros(self.n, dtype=bool)
        for name, bad, _ in self._entries:
            if name == field:
                out |= bad
        return out

    @property
    def bad(self) -> BoolArray:
        return np.asarray(self.first >= 0, dtype=bool)

    def describe(self, row: int) -> tuple[str, str]:
        """(field, reason) for a bad row; other bad fields of the row are named in the reason."""
        field, _, explain = self._entries[int(self.first[row])]
        others = []
        for name, bad, _ in self._entries:
            if bad[row] and name != field and name not in others:
                others.append(name)
        reason = explain(row)
        if others and field != ROW:
            reason += f" (also unreadable: {', '.join(others)})"
        return field, reason


def row_shape(table: CsvTable, problems: Problems) -> None:
    """Rows whose cells cannot be trusted: an unclosed quote, or more fields than the header."""
    if table.broken:
        cut = np.zeros(table.rows, dtype=bool)
        cut[list(table.broken)] = True
        problems.add(
            ROW,
            cut,
            lambda i: (
                "an unclosed quote: its value would run on to line "
                f"{table.broken[i]}; only this line is set aside, reading went on with the next"
            ),
        )
    if table.overflow:
        wide = np.zeros(table.rows, dtype=bool)
        wide[list(table.overflow)] = True
        width = len(table.header)
        problems.add(
            ROW,
            wide,
            lambda i: (
                f"{table.overflow[i]} fields where the header has {width}: "
                "an unquoted separator inside a value?"
            ),
        )


def unreadable_frame(
    table: CsvTable,
    problems: Problems,
    *,
    log_ids: IntArray | None = None,
    has_log_id: BoolArray | None = None,
    request_ids: Any = None,
) -> pd.DataFrame:
    """line, field, reason, raw (and the row's ids when they could be read)."""
    where = np.flatnonzero(problems.bad)
    described = [problems.describe(int(i)) for i in where]
    ids = pd.arrays.IntegerArray(
        log_ids[where] if log_ids is not None else np.zeros(len(where), np.int64),
        ~has_log_id[where] if has_log_id is not None else np.ones(len(where), bool),
    )
    reqs = (
        request_ids[where]
        if request_ids is not None
        else pd.array([pd.NA] * len(where), dtype="string")
    )
    return pd.DataFrame(
        {
            "line": table.lines[where].astype(np.int64),
            "field": pd.array([d[0] for d in described], dtype="string"),
            "reason": pd.array([d[1] for d in described], dtype="string"),
            "raw": pd.array([table.raw(int(i)) for i in where], dtype="string"),
            "log_id": ids,
            "request_id": reqs,
        }
    )


def unreadable_findings(ledger: Ledger) -> pd.DataFrame:
    """One unreadable_row finding per row the loader could not read (ledger or invoice)."""
    bad = ledger.unreadable
    if not len(bad):
        return findings_frame({})
    n = len(bad)
    explanation = [
        f"line {line}: {fld}: {reason}; the row reads: {_snippet(raw)}"
        for line, fld, reason, raw in zip(
            bad["line"], bad["field"], bad["reason"], bad["raw"], strict=True
        )
    ]
    missing = pd.Series([pd.NA] * n, index=bad.index)
    return findings_frame(
        {
            "category": [UNREADABLE_ROW] * n,
            "severity": [SEVERITY[UNREADABLE_ROW]] * n,
            "source": [ledger.kind] * n,
            "log_id": bad.get("log_id", missing).to_numpy(),
            "ledger_line": bad["line"].to_numpy(),
            "request_id": bad.get("request_id", missing).to_numpy(),
            "explanation": explanation,
        }
    )


def _snippet(raw: object, limit: int = 120) -> str:
    text = str(raw).replace("\r", " ").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
