"""The run's headline figures, computed once for summary.json, the workbook and CI outputs.

All sums are integer quota; currency amounts are derived from those sums with `money`, so a
total is never a sum of rounded (or binary-float) amounts. The logs' side comes from the
run's aggregates (core/aggregates.py), never from the logs themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pandas as pd

from reconcile.core.aggregates import MISMATCH, NOT_REPRICEABLE, OK, UNPRICED, Sums
from reconcile.core.money import exact_sum, quota_to_amount
from reconcile.core.results import Ledger, RunResult
from reconcile.core.schema import TYPE_CODES, TYPE_NAMES


@dataclass(frozen=True)
class Count:
    count: int
    quota: int


@dataclass(frozen=True)
class Money:
    """Converts quota to the report currency exactly (rules.report_currency at rules.rate)."""

    currency: str
    rate: Decimal  # units of the currency per 1 USD
    quota_per_unit: Decimal

    def __call__(self, quota: int) -> Decimal:
        return quota_to_amount(quota, self.quota_per_unit, self.rate)


@dataclass(frozen=True)
class Totals:
    logs: dict[str, Count]  # consume, refund, topup, error: count and quota, as fetched
    repriced: Count  # consume logs a rule priced and that could be re-priced; charged quota
    expected_quota: int  # what the rules give for those logs
    mismatched: Count  # repriced logs beyond tolerance; charged quota
    unpriced: Count  # consume logs no rule prices; charged quota
    not_repriceable: Count  # consume logs lacking fields to re-price; charged quota
    book: Ledger | None  # the ledger, else the invoice, else None
    book_by_type: dict[str, Count]  # the book's rows by direction (an invoice is all consume)
    unreadable_rows: int  # ledger + invoice rows that could not be read
    #: consume logs by billing path (aggregates.NO_PATH when no rule prices the model)
    #: and not re-priceable logs by reason code: count and charged quota, largest count first
    by_path: dict[str, Count] = field(default_factory=dict)
    by_reason: dict[str, Count] = field(default_factory=dict)

    @property
    def net_spend(self) -> int:
        """Consume minus refunds; topups are credit bought, not spend."""
        return self.logs["consume"].quota - self.logs["refund"].quota

    @property
    def book_kind(self) -> str:
        return self.book.kind if self.book is not None else "none"

    @property
    def book_rows(self) -> int:
        return len(self.book.rows) if self.book is not None else 0

    @property
    def book_quota(self) -> int:
        return self.book.quota if self.book is not None else 0


def money_of(result: RunResult) -> Money:
    rules = result.rules
    currency = rules.report_currency.strip().upper()
    return Money(currency, rules.rate(currency), rules.quota_per_unit)


def _count(frame: pd.DataFrame, column: str = "quota") -> Count:
    return Count(len(frame), exact_sum(frame[column]) if len(frame) else 0)


def _counts(table: Sums[str], *names: str) -> Count:
    """Count and quota of the table's rows under `names`, together."""
    parts = [table[n] for n in names if n in table]
    return Count(sum(p[0] for p in parts), sum(p[1] for p in parts))


def _ranked(table: Sums[str]) -> dict[str, Count]:
    """Count and quota by name, the largest count first, then by name, so the same run
    always lists them alike."""
    return {
        name: Count(count, quota)
        for name, (count, quota) in sorted(table.items(), key=lambda kv: (-kv[1][0], kv[0]))
    }


def book_by_type(book: Ledger | None) -> dict[str, Count]:
    out = {name: Count(0, 0) for name in ("consume", "refund", "topup")}
    if book is None:
        return out
    rows = book.rows
    if book.kind == "invoice" or "type" not in rows:
        out["consume"] = _count(rows)
        return out
    for name in out:
        out[name] = _count(rows[rows["type"] == TYPE_CODES[name]])
    return out


def compute_totals(result: RunResult) -> Totals:
    agg = result.aggregates
    unreadable = sum(len(b.unreadable) for b in (result.ledger, result.invoice) if b is not None)
    book = result.ledger if result.ledger is not None else result.invoice
    return Totals(
        logs={name: _counts(agg.by_type, name) for name in TYPE_NAMES.values()},
        repriced=_counts(agg.by_status, OK, MISMATCH),
        expected_quota=int(result.pricing.expected_quota),
        mismatched=_counts(agg.by_status, MISMATCH),
        unpriced=_counts(agg.by_status, UNPRICED),
        not_repriceable=_counts(agg.by_status, NOT_REPRICEABLE),
        book=book,
        book_by_type=book_by_type(book),
        unreadable_rows=unreadable,
        by_path=_ranked(agg.by_path),
        by_reason=_ranked(agg.by_reason),
    )
