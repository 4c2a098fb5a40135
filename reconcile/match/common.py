"""What both matchers share: id lookups, time text and finding wording.

Tolerance is not here: both matchers ask `reconcile.core.tolerance`, as pricing does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconcile.core.period import Period

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]


def lookup(sorted_keys: IntArray, order: IntArray, keys: IntArray) -> IntArray:
    """Row position (in the unsorted table) of each key, -1 where absent."""
    out = np.full(len(keys), -1, dtype=np.int64)
    if not len(sorted_keys) or not len(keys):
        return out
    at = np.searchsorted(sorted_keys, keys)
    at = np.minimum(at, len(sorted_keys) - 1)
    hit = sorted_keys[at] == keys
    out[hit] = order[at[hit]]
    return out


def quota_text(value: object) -> str:
    return f"{int(value):,}"  # type: ignore[call-overload]


def signed(value: int) -> str:
    return f"+{value:,}" if value > 0 else f"{value:,}"


def period_text(period: Period) -> str:
    return f"[{period.start.isoformat()}, {period.end.isoformat()})"


def object_texts(values: Any, n: int) -> npt.NDArray[np.object_]:
    if values is None:
        return np.full(n, None, dtype=object)
    arr = pd.array(values, dtype="string")
    return np.asarray(arr.to_numpy(dtype=object, na_value=None), dtype=object)


def first_present(*arrays: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """Element-wise first non-missing value."""
    out = arrays[0].copy()
    for arr in arrays[1:]:
        gap = pd.isna(out)
        out[gap] = arr[gap]
    return out


def at_positions(values: IntArray, pos: IntArray) -> IntArray:
    """values[pos], 0 where pos is -1 (also when `values` is empty)."""
    out = np.zeros(len(pos), dtype=np.int64)
    has = pos >= 0
    out[has] = values[pos[has]]
    return out


def int_or_na(values: IntArray, has: BoolArray) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(np.asarray(values, dtype=np.int64), ~np.asarray(has, dtype=bool))
