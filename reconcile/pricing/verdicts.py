"""A log's verdict from the contract's charge: ok, mismatch, or not re-priceable, with why.

- ok: the charged quota agrees, within tolerance (`reconcile.core.tolerance`), with the
  contract's quota rounded half away from zero, or, on paths where new-api truncates with
  int(), with its floor. Ratios are compared by their effect on the quota only: a ratio
  written 8.333333 for 2.5/0.3 is no finding while the quotas agree.
- mismatch: they differ. When the charge equals what a known gateway defect gives, the
  defect is the cause.
- not re-priceable: the rules cannot reproduce the charge (a price they lack, a field the
  log lacks, a quota beyond 64 bits): never a mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Final

from reconcile.core.money import round_half_away
from reconcile.core.tolerance import ToleranceLike, agrees
from reconcile.pricing.paths.base import (
    OTHER_BAD_FIELD,
    OTHER_UNREADABLE,
    QUOTA_BEYOND_64_BITS,
    Charge,
    Priced,
)
from reconcile.pricing.paths.text import USAGE_SEMANTICS_UNKNOWN
from reconcile.pricing.rules_paths import INT64_MAX

OK: Final = 0
MISMATCH: Final = 1
UNPRICED: Final = 2
NOT_REPRICEABLE: Final = 3
STATUSES: Final = ("ok", "mismatch", "unpriced", "not_repriceable")

#: Reason codes of not re-priceable logs that mean the gateway's own record is broken: a
#: reviewer must look, so these findings are errors, not warnings.
BROKEN_RECORD: Final = frozenset({OTHER_UNREADABLE.code, OTHER_BAD_FIELD.code})
OVERFLOW: Final = QUOTA_BEYOND_64_BITS.code


@dataclass(frozen=True, slots=True)
class Verdict:
    path: str
    status: int
    expected: int | None
    reason: str = ""
    code: str = ""  # not re-priceable: why, in a word (counted in the report)


def _quota(exact: Decimal, floor_one: bool, rounding: str | None = None) -> int:
    q = int(exact.to_integral_value(rounding=rounding)) if rounding else round_half_away(exact)
    return 1 if floor_one and q <= 0 else q


def judge(charged: int, priced: Priced, tol: ToleranceLike) -> Verdict:
    if not isinstance(priced, Charge):
        return Verdict(priced.path, NOT_REPRICEABLE, None, priced.detail, priced.code)
    expected = _quota(priced.exact, priced.floor_one)
    if abs(expected) > INT64_MAX:
        return Verdict(
            priced.path,
            NOT_REPRICEABLE,
            None,
            "the rules give a quota beyond the 64-bit range",
            OVERFLOW,
        )
    if agrees(charged, expected, tol) or (
        priced.truncates
        and agrees(charged, _quota(priced.exact, priced.floor_one, ROUND_FLOOR), tol)
    ):
        return Verdict(priced.path, OK, expected)
    if priced.alt is not None:
        alt = _quota(priced.alt, priced.floor_one)
        if alt != expected and agrees(charged, alt, tol):
            if priced.alt_unsure:
                return Verdict(
                    priced.path,
                    NOT_REPRICEABLE,
                    None,
                    priced.alt_cause,
                    USAGE_SEMANTICS_UNKNOWN.code,
                )
            return Verdict(priced.path, MISMATCH, expected, priced.alt_cause, "gateway_defect")
    return Verdict(priced.path, MISMATCH, expected)
