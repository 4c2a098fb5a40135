"""Exact conversions between integer quota and currency amounts (decimal.Decimal, never float).

Rounding: quota is an integer, so a currency amount converted to quota is rounded half away
from zero (ROUND_HALF_UP in `decimal`), as new-api rounds quotas. Quota converted to currency
is exact up to MONEY_PLACES decimal places, then rounded the same way for display.

A column of amounts is held as Arrow decimals with exactly those six places (MONEY_DTYPE):
16 bytes a value instead of a Python Decimal object (~100 bytes and a pointer), and read
back as the same Decimals, so every writer prints the same text.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

MONEY_PLACES = Decimal("0.000001")
#: 38 digits, 6 of them decimals: more than any amount `quota_to_amount` can return (the
#: decimal context's 28 significant digits), so storing never rounds or fails.
MONEY_DTYPE = pd.ArrowDtype(pa.decimal128(38, 6))


def round_half_away(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def quota_to_amount(quota: int, quota_per_unit: Decimal, rate: Decimal = Decimal(1)) -> Decimal:
    """Quota units → currency amount (rate = units of the currency per 1 USD)."""
    return (Decimal(quota) * rate / quota_per_unit).quantize(MONEY_PLACES, rounding=ROUND_HALF_UP)


def amount_to_quota(amount: Decimal, quota_per_unit: Decimal, rate: Decimal = Decimal(1)) -> int:
    """Currency amount → quota units, rounded half away from zero."""
    return round_half_away(amount * quota_per_unit / rate)


def amounts_of(quota: pd.Series, quota_per_unit: Decimal, rate: Decimal = Decimal(1)) -> pd.Series:
    """`quota_to_amount` of each value of an integer quota column, as a MONEY_DTYPE column
    (NA where the quota is missing). Each distinct quota is converted once."""
    codes, uniques = pd.factorize(quota, use_na_sentinel=True)
    exact = [quota_to_amount(int(q), quota_per_unit, rate) for q in uniques]
    table = pa.array(exact, type=MONEY_DTYPE.pyarrow_dtype)
    picked = table.take(pa.array(codes, mask=codes < 0))
    return pd.Series(pd.arrays.ArrowExtensionArray(picked), index=quota.index)


def is_money(series: pd.Series) -> bool:
    """True for a MONEY_DTYPE (or any Arrow decimal) column: its values read as Decimals."""
    dtype = series.dtype
    return isinstance(dtype, pd.ArrowDtype) and pa.types.is_decimal(dtype.pyarrow_dtype)


def display_amount(amount: Decimal, currency: str = "") -> str:
    """An exact amount for text: thousands separators, at least two decimals, never rounded
    (trailing zeros past the second decimal are dropped: 0.570000 → 0.57, 0.000125 stays)."""
    text = f"{amount:,f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    text = f"{whole}.{frac}"
    return f"{currency} {text}".strip()


def exact_sum(values: Any) -> int:
    """The exact sum of integer quotas, missing values skipped, as a Python int.

    numpy sums int64 with silent wrap-around: two quotas near 2^63 - 1 would add up to a
    negative total. The fast sum is used only when no wrap is possible.
    """
    arr = np.asarray(getattr(values, "dropna", lambda: values)(), dtype=np.int64)
    if not len(arr):
        return 0
    bound = max(abs(int(arr.max())), abs(int(arr.min())))
    if bound * len(arr) < 2**63:
        return int(arr.sum())
    return sum(int(v) for v in arr.tolist())
