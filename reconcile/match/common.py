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


def iso_times(seconds: IntArray, period: Period) -> npt.NDArray[np.object_]:
    """ISO 8601 with offset in the period's time zone, e.g. 2026-10-05T13:45:00+08:00.

    Formatted by numpy from the local wall time, with the offset text looked up per distinct
    offset: pandas' strftime costs some 30 us a value.
    """
    if not len(seconds):
        return np.array([], dtype=object)
    utc = pd.to_datetime(np.asarray(seconds, dtype=np.int64), unit="s", utc=True)
    wall = utc.tz_convert(period.tz).tz_localize(None)
    wall_s = np.asarray(wall.to_numpy().astype("datetime64[s]"))
    offset = wall_s.astype(np.int64) - np.asarray(seconds, dtype=np.int64)
    kinds, which = np.unique(offset, return_inverse=True)
    suffix = np.array([_offset_text(int(k)) for k in kinds], dtype=object)[which]
    text = np.datetime_as_string(wall_s, unit="s").astype(object)
    return np.asarray(text + suffix, dtype=object)


def _offset_text(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    minutes = abs(seconds) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def quota_text(value: object) -> str:
    return f"{int(value):,}"  # type: ignore[call-overload]


def signed(value: int) -> str:
    return f"+{value:,}" if value > 0 else f"{value:,}"


def period_text(period: Period) -> str:
    return f"[{period.start.isoformat()}, {period.end.isoformat()})"


def strings(values: Any, n: int) -> npt.NDArray[np.object_]:
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


def gather(values: IntArray, pos: IntArray) -> IntArray:
    """values[pos], 0 where pos is -1 (also when `values` is empty)."""
    out = np.zeros(len(pos), dtype=np.int64)
    has = pos >= 0
    out[has] = values[pos[has]]
    return out


def int_or_na(values: IntArray, has: BoolArray) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(np.asarray(values, dtype=np.int64), ~np.asarray(has, dtype=bool))
