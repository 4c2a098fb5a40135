"""Exact conversions between integer quota and currency amounts (decimal.Decimal, never float).

Rounding: quota is an integer, so a currency amount converted to quota is rounded half away
from zero (ROUND_HALF_UP in `decimal`), as new-api rounds quotas. Quota converted to currency
is exact up to MONEY_PLACES decimal places, then rounded the same way for display.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np

MONEY_PLACES = Decimal("0.000001")


def round_half_away(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def quota_to_amount(quota: int, quota_per_unit: Decimal, rate: Decimal = Decimal(1)) -> Decimal:
    """Quota units → currency amount (rate = units of the currency per 1 USD)."""
    return (Decimal(quota) * rate / quota_per_unit).quantize(MONEY_PLACES, rounding=ROUND_HALF_UP)


def amount_to_quota(amount: Decimal, quota_per_unit: Decimal, rate: Decimal = Decimal(1)) -> int:
    """Currency amount → quota units, rounded half away from zero."""
    return round_half_away(amount * quota_per_unit / rate)


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
