"""Exact conversions between integer quota and currency amounts (decimal.Decimal, never float).

Rounding: quota is an integer, so a currency amount converted to quota is rounded half away
from zero (ROUND_HALF_UP in `decimal`), as new-api rounds quotas. Quota converted to currency
is exact up to MONEY_PLACES decimal places, then rounded the same way for display.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

MONEY_PLACES = Decimal("0.000001")


def round_half_away(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def quota_to_amount(quota: int, quota_per_unit: Decimal, rate: Decimal = Decimal(1)) -> Decimal:
    """Quota units → currency amount (rate = units of the currency per 1 USD)."""
    return (Decimal(quota) * rate / quota_per_unit).quantize(MONEY_PLACES, rounding=ROUND_HALF_UP)


def amount_to_quota(amount: Decimal, quota_per_unit: Decimal, rate: Decimal = Decimal(1)) -> int:
    """Currency amount → quota units, rounded half away from zero."""
    return round_half_away(amount * quota_per_unit / rate)
