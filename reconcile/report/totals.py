"""The run's headline figures, computed once for summary.json, the workbook and CI outputs.

All sums are integer quota; currency amounts are derived from those sums with `money`, so a
total is never a sum of rounded (or binary-float) amounts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconcile.core.money import exact_sum, quota_to_amount
from reconcile.core.results import Ledger, RunResult
from reconcile.core.schema import CONSUME, TYPE_CODES, TYPE_NAMES

#: Re-pricing statuses (results.Pricing.priced["status"]).
OK, MISMATCH, UNPRICED, NOT_REPRICEABLE = "ok", "mismatch", "unpriced", "not_repriceable"
#: The billing path of a consume log no rule prices (pricing leaves its path empty).
NO_PATH = "none"


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
    #: consume logs by billing path (priced["path"]; NO_PATH when no rule prices the model)
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


def log_counts(logs: pd.DataFrame) -> dict[str, Count]:
    """Count and quota of each kept log type, every type present."""
    return {name: _count(logs[logs["type"] == code]) for code, name in TYPE_NAMES.items()}


def priced_with_charge(result: RunResult) -> pd.DataFrame:
    """The pricing table joined with each consume log's charged quota, model, token and time."""
    logs = result.fetch.logs
    consume = logs.loc[
        logs["type"] == CONSUME,
        ["id", "created_at", "key_ref", "token_name", "model_name", "quota"],
    ]
    priced = result.pricing.priced
    wanted = ("id", "rule", "expected_quota", "diff_quota", "status", "path", "reason_code")
    cols = [c for c in wanted if c in priced]
    return consume.merge(priced[cols], on="id", how="left", validate="one_to_one")


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


def counted_by(frame: pd.DataFrame, column: str, empty: str) -> dict[str, Count]:
    """Count and quota of `frame`'s rows by `column` (missing or blank: `empty`), the
    largest count first, then by name, so the same run always lists them alike."""
    codes: npt.NDArray[np.intp] = np.full(len(frame), -1, dtype=np.intp)
    names: list[str] = []
    if column in frame:
        codes, uniques = pd.factorize(frame[column])  # missing: -1
        names = [str(u).strip() or empty for u in uniques]
    quota = frame["quota"]
    out: dict[str, Count] = {}
    for name, rows in [*((n, codes == i) for i, n in enumerate(names)), (empty, codes < 0)]:
        part = quota[rows]
        if len(part):
            was = out.get(name, Count(0, 0))
            out[name] = Count(was.count + len(part), was.quota + exact_sum(part))
    return dict(sorted(out.items(), key=lambda kv: (-kv[1].count, kv[0])))


def compute_totals(result: RunResult) -> Totals:
    joined = priced_with_charge(result)
    status = joined["status"].astype("string") if "status" in joined else None

    def by_status(*names: str) -> Count:
        if status is None:
            return Count(0, 0)
        return _count(joined[status.isin(names).fillna(False)])

    unreadable = sum(len(b.unreadable) for b in (result.ledger, result.invoice) if b is not None)
    book = result.ledger if result.ledger is not None else result.invoice
    return Totals(
        logs=log_counts(result.fetch.logs),
        repriced=by_status(OK, MISMATCH),
        expected_quota=int(result.pricing.expected_quota),
        mismatched=by_status(MISMATCH),
        unpriced=by_status(UNPRICED),
        not_repriceable=by_status(NOT_REPRICEABLE),
        book=book,
        book_by_type=book_by_type(book),
        unreadable_rows=unreadable,
        by_path=counted_by(joined, "path", NO_PATH),
        by_reason=counted_by(
            joined[status.eq(NOT_REPRICEABLE).fillna(False)] if status is not None else joined[:0],
            "reason_code",
            "unspecified",
        ),
    )
