"""A book's money column in quota units: `quota` cells as they are, `amount` cells converted.

Amounts convert to quota exactly (integer arithmetic, half away from zero) at the rules'
rate for their currency, which comes from the row's currency column, a sign or code in the
cell, or the `currency` setting, in that order; each converted row carries the allowance
its written decimals leave (half the last place, in quota, plus half a quota).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from reconcile.books.cells import (
    BoolArray,
    IntArray,
    cell,
    currency_code,
    map_words,
    parse_amount,
    to_quota,
)
from reconcile.books.problems import Problems
from reconcile.errors import InputError
from reconcile.pricing.rules import ColumnMap, Rules

if TYPE_CHECKING:
    from reconcile.books.book import Cells


@dataclass
class Money:
    quota: IntArray  # magnitude in quota units
    negative: BoolArray  # the cell was written negative
    rounding: IntArray  # quota the written amount may be off by (0 for quota cells)
    currency: str  # most common currency of the amounts ("" for quota-only files)
    sign_field: str  # the column negative signs are reported on
    notes: list[str] = field(default_factory=list)


def read_money(
    cells: Cells, settings: ColumnMap, rules: Rules, problems: Problems, decimal: str
) -> Money:
    """Each row's amount in quota units: from `quota`, else `amount` at the rules' rate."""
    cols = cells.bind.index
    n = cells.table.rows
    quota = np.zeros(n, dtype=np.int64)
    negative = np.zeros(n, dtype=bool)
    rounding = np.zeros(n, dtype=np.int64)
    notes: list[str] = []
    use_amount = np.ones(n, dtype=bool)
    if "quota" in cols:
        qt = cells.text("quota")
        given_quota = parse_amount(cells.money("quota"), decimal)
        step = np.int64(10**given_quota.scale)
        no_symbol = np.asarray(pd.isna(given_quota.symbol), dtype=bool)
        whole = given_quota.ok & no_symbol & (given_quota.units % step == 0)
        use_amount = given_quota.empty if "amount" in cols else np.zeros(n, dtype=bool)
        if "amount" not in cols:
            problems.add("quota", given_quota.empty, "missing quota")

        def quota_reason(i: int) -> str:
            text = cell(qt, i)
            if given_quota.ok[i] and not no_symbol[i]:
                return (
                    f"{text!r} has a currency sign: quota is in quota units, money goes in amount"
                )
            if given_quota.ok[i]:
                return f"{text!r} is not a whole number of quota units"
            return f"{text!r} is not a number"

        problems.add("quota", ~given_quota.empty & ~whole, quota_reason)
        quota = np.where(whole, given_quota.units // step, 0).astype(np.int64)
        negative = given_quota.negative & whole
        if "amount" in cols:
            notes.append(
                "quota and amount columns: quota is used, amount only where quota is empty"
            )
    currency = ""
    if "amount" in cols and use_amount.any():
        currency = _amounts_to_quota(
            cells,
            settings,
            rules,
            problems,
            decimal,
            use_amount,
            (quota, negative, rounding),
            notes,
        )
    return Money(
        quota=quota,
        negative=negative,
        rounding=rounding,
        currency=currency,
        sign_field="quota" if "quota" in cols else "amount",
        notes=notes,
    )


def _amounts_to_quota(
    cells: Cells,
    settings: ColumnMap,
    rules: Rules,
    problems: Problems,
    decimal: str,
    rows: BoolArray,
    out: tuple[IntArray, BoolArray, IntArray],
    notes: list[str],
) -> str:
    """Convert `amount` cells of `rows` into `out` (quota, negative, rounding); the currency."""
    quota, negative, rounding = out
    table, cols = cells.table, cells.bind.index
    at = cells.text("amount")
    amount = parse_amount(cells.money("amount"), decimal)
    need = "missing amount" if "quota" not in cols else "missing quota and amount"
    problems.add("amount", rows & amount.empty, need)
    style = "a decimal comma" if decimal == "," else "a decimal point"

    def amount_reason(i: int) -> str:
        text = cell(at, i)
        if amount.two_currencies[i]:
            return f"{text!r} names two currencies"
        return f"{text!r} is not an amount (this file is read with {style})"

    problems.add("amount", rows & ~amount.empty & ~amount.ok, amount_reason)

    code = np.full(table.rows, None, dtype=object)
    if settings.currency:
        default = currency_code(settings.currency)
        if default is None:
            raise InputError(
                f"{settings.currency!r} is not a currency code", file=table.path, field="currency"
            )
        code[:] = default
    has_symbol = ~np.asarray(pd.isna(amount.symbol), dtype=bool)
    code[has_symbol] = amount.symbol[has_symbol]
    if "currency" in cols:
        ct = cells.text("currency")
        words, idx = map_words(ct, lambda w: currency_code(w) if w.strip() else "")
        per_row = np.array([w or None for w in words] + [None], dtype=object)[idx]
        unknown = np.array([w is None for w in words] + [False], dtype=bool)[idx]
        problems.add(
            "currency", rows & unknown, lambda i: f"{cell(ct, i)!r} is not a currency code"
        )
        has_col = ~np.asarray(pd.isna(per_row), dtype=bool)
        clash = rows & has_col & has_symbol & (per_row != amount.symbol)
        problems.add(
            "currency",
            clash,
            lambda i: (
                f"the amount {cell(at, i)!r} is in {amount.symbol[i]} "
                f"but the currency column says {per_row[i]}"
            ),
        )
        code[has_col] = per_row[has_col]
    elif not settings.currency and not (rows & has_symbol).any() and (rows & amount.ok).any():
        raise InputError(
            "amounts without a currency: add a currency column, write the sign ($12.50, "
            '¥90) or set currency = "USD" in the profile or the rules\' [ledger]/[invoice]',
            file=table.path,
            line=table.header_line,
            field="currency",
        )
    known = ~np.asarray(pd.isna(code), dtype=bool)
    problems.add(
        "currency",
        rows & amount.ok & ~known,
        "no currency: add a currency column or a sign, or set `currency` in the profile",
    )
    usable = rows & amount.ok & known
    counts: Counter[str] = Counter()
    for cur in sorted({str(c) for c in code[usable]}):
        sel = usable & (code == cur)
        try:
            rate = rules.rate(cur)
        except InputError:
            problems.add(
                "currency",
                sel,
                f"no exchange rate for {cur} in the rules' [currency] (units per 1 USD)",
            )
            continue
        q, r, too_big = to_quota(
            amount.units[sel], amount.scale, amount.places[sel], rate, rules.quota_per_unit
        )
        if too_big.any():
            huge = np.zeros(table.rows, dtype=bool)
            huge[np.flatnonzero(sel)[too_big]] = True
            problems.add("amount", huge, lambda i: f"{cell(at, i)!r} is too large to be a quota")
        quota[sel] = q
        rounding[sel] = r
        negative[sel] = amount.negative[sel]
        counts[cur] = int(sel.sum())
    if len(counts) > 1:
        notes.append(
            "amounts in several currencies: " + ", ".join(c for c, _ in counts.most_common())
        )
    return counts.most_common(1)[0][0] if counts else ""
