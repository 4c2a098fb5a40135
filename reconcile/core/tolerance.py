"""Tolerance, once: how far two quotas may differ and still agree.

|a - b| <= max(quota, relative x max(|a|, |b|), slack), exactly (the relative part as a
Fraction: quotas are integers, so |a-b| <= relative x m exactly when |a-b| <= floor(relative x
m)). `slack` is per row: how far a ledger amount written in currency to few decimals may be off.
Pricing and matching both ask this module, so they can never disagree on what "agrees" means.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import Protocol

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class ToleranceLike(Protocol):
    @property
    def quota(self) -> int: ...

    @property
    def relative(self) -> object: ...


@lru_cache(maxsize=64)
def _as_fraction(relative: str) -> Fraction:
    return Fraction(relative)


def _fraction(tol: ToleranceLike) -> Fraction:
    return _as_fraction(str(tol.relative))


def allowance_one(a: int, b: int, tol: ToleranceLike, slack: int = 0) -> int:
    """The largest |a - b| that still agrees, for one pair."""
    rel = _fraction(tol)
    part = int(max(abs(a), abs(b)) * rel) if rel else 0
    return max(tol.quota, slack, part)


def agrees(a: int, b: int, tol: ToleranceLike, slack: int = 0) -> bool:
    diff = abs(a - b)
    if diff <= tol.quota or diff <= slack:
        return True
    return diff <= allowance_one(a, b, tol, slack)


def allowance(a: IntArray, b: IntArray, tol: ToleranceLike, slack: IntArray | int = 0) -> IntArray:
    """The largest |a - b| that still agrees, per row (exact, no float)."""
    out = np.maximum(np.int64(tol.quota), np.asarray(slack, dtype=np.int64))
    out = np.broadcast_to(out, a.shape).copy()
    rel = _fraction(tol)
    if rel > 0 and len(a):
        big = np.maximum(_abs(a), _abs(b))
        num, den = rel.numerator, rel.denominator
        if int(big.max()) * num < 2**62 and den < 2**62:
            part = big * np.int64(num) // np.int64(den)
        else:
            part = np.array([int(m) * num // den for m in big], dtype=np.int64)
        out = np.maximum(out, part)
    return np.asarray(out, dtype=np.int64)


def within(a: IntArray, b: IntArray, tol: ToleranceLike, slack: IntArray | int = 0) -> BoolArray:
    """|a - b| within tolerance, per row; safe near the int64 limits (no wrap-around)."""
    diff = abs_diff(a, b)
    return np.asarray(diff <= allowance(a, b, tol, slack), dtype=bool)


def _abs(x: IntArray) -> IntArray:
    """|x|, with -2**63 read as 2**63 - 1 (one quota off at the very edge, never negative)."""
    out: IntArray = np.abs(np.maximum(x, np.int64(-(2**63) + 1)))
    return out


def abs_diff(a: IntArray, b: IntArray) -> IntArray:
    """|a - b| saturated at int64's maximum instead of wrapping."""
    with np.errstate(over="ignore"):
        d = a - b
    wrapped = (a >= 0) != (b >= 0)
    wrapped &= (d >= 0) != (a >= 0)
    out = _abs(d)
    out[wrapped] = np.iinfo(np.int64).max
    return out
