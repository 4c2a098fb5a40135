"""Vectorised reading of timestamp cells: ISO 8601, Excel's slash dates, unix seconds or ms.

A naive time is in the run's time zone; one that does not exist or is ambiguous there (a
daylight-saving change) is marked, not guessed. Arrow parses well-formed columns; pandas
reads what Arrow refuses, and only what both reject is unreadable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reconcile.books.cells import BoolArray, IntArray, empty, ints, mask

_UNIX_FRACTION = r"^\d{9,10}\.\d+$"
_OFFSET = r"(?:[+-]\d{2}(?::?\d{2})?|[Zz])$"
_MONTH_ONLY = r"^\d{4}[-/.]\d{1,2}$"


@dataclass
class Times:
    seconds: IntArray  # unix seconds (floored)
    ok: BoolArray
    local_gap: BoolArray  # a naive time that does not exist or is ambiguous (DST change)
    empty: BoolArray


def _epoch_seconds(ser: pd.Series) -> IntArray:
    micro = ser.dt.as_unit("us").astype("int64").to_numpy()
    return np.asarray(micro // 1_000_000, dtype=np.int64)


def _arrow_seconds(ts: Any) -> IntArray:
    micro = ints(pc.cast(pc.cast(ts, pa.timestamp("us", tz="UTC")), pa.int64()))
    return np.asarray(micro // 1_000_000, dtype=np.int64)


def parse_time(t: Any, tz: ZoneInfo, date_format: str | None = None) -> Times:
    """ISO 8601 with or without offset (naive = `tz`), `2026/10/5 9:05`, unix s or ms.

    Arrow's ISO 8601 parser reads well-formed columns in milliseconds; anything it rejects
    goes through pandas' more forgiving one, and only what both reject is unreadable.
    """
    n = len(t)
    seconds = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    gap = np.zeros(n, dtype=bool)
    is_empty = empty(t)
    digits = mask(pc.ascii_is_decimal(t))
    if digits.any():
        width = ints(pc.utf8_length(t))
        unix = digits & ((width == 9) | (width == 10))
        ms = digits & ((width == 12) | (width == 13))
        vals = ints(pc.cast(pc.if_else(pa.array(unix | ms), t, "0"), pa.int64()))
        seconds = np.where(unix, vals, np.where(ms, vals // 1000, 0)).astype(np.int64)
        ok |= unix | ms
    timeish = mask(pc.match_substring(t, ":"))
    odd = ~ok & ~is_empty & ~timeish & ~mask(pc.match_substring(t, "-"))
    if odd.any():
        frac = odd & mask(pc.match_substring_regex(t, _UNIX_FRACTION))
        if frac.any():
            whole = pc.replace_substring_regex(t, r"\..*$", "")
            vals = ints(pc.cast(pc.if_else(pa.array(frac), whole, "0"), pa.int64()))
            seconds[frac] = vals[frac]
            ok |= frac
    rest = ~ok & ~is_empty
    short = rest & (ints(pc.utf8_length(t)) <= 7)
    if short.any():
        rest &= ~(short & mask(pc.match_substring_regex(t, _MONTH_ONLY)))
    if not rest.any():
        return Times(seconds, ok, gap, is_empty)
    norm = t
    if (
        pc.any(pc.ends_with(t, "utc", ignore_case=True)).as_py()
        or pc.any(pc.ends_with(t, "gmt", ignore_case=True)).as_py()
    ):
        norm = pc.replace_substring_regex(norm, r"(?i)\s*(?:utc|gmt)$", "+00:00")
    if pc.any(pc.match_substring_regex(norm, r"\s[+-]\d|\s[Zz]$")).as_py():
        norm = pc.replace_substring_regex(norm, r"\s+([+-]\d{2}(?::?\d{2})?|[Zz])$", r"\1")
    if date_format:
        _parse_with(norm, rest, tz, seconds, ok, gap, date_format)
    aware = rest & timeish & mask(pc.match_substring_regex(norm, _OFFSET))
    for where, is_aware in ((aware, True), (rest & ~aware, False)):
        if where.any():
            _parse_iso(norm, where, tz, is_aware, seconds, ok, gap)
    return Times(seconds, ok, gap, is_empty)


#: Non-ISO layouts Excel and finance systems write, tried with Arrow's strptime (which also
#: takes single-digit months, days and hours) before pandas' slower, more forgiving parser.
SLASH_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d", "%Y.%m.%d %H:%M:%S")
_PROBE = 1000


def _arrow_cast(sub: Any, aware: bool) -> Any | None:
    """Arrow's ISO 8601 cast, or None when any cell is not ISO (probed first: failing is slow)."""
    target = pa.timestamp("us", tz="UTC") if aware else pa.timestamp("us")
    try:
        pc.cast(sub.slice(0, _PROBE), target)
        return pc.cast(sub, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _localize_arrow(local: Any, tz: ZoneInfo) -> Any | None:
    try:
        return pc.assume_timezone(local, timezone=tz.key, ambiguous="raise", nonexistent="raise")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return None  # a DST gap or overlap somewhere: pandas marks exactly which


def _parse_iso(
    t: Any,
    where: BoolArray,
    tz: ZoneInfo,
    aware: bool,
    seconds: IntArray,
    ok: BoolArray,
    gap: BoolArray,
) -> None:
    """Parse the `where` cells in place: Arrow first, pandas for what Arrow refuses."""
    idx = np.flatnonzero(where)
    sub = pc.filter(t, pa.array(where))
    ts = _arrow_cast(sub, aware)
    if ts is not None and not aware:
        ts = _localize_arrow(ts, tz)
    if ts is not None:
        seconds[idx] = _arrow_seconds(ts)
        ok[idx] = True
        return
    left = np.ones(len(idx), dtype=bool)
    if not aware:
        for fmt in SLASH_FORMATS:
            parsed = pc.strptime(sub, format=fmt, unit="us", error_is_null=True)
            hit = mask(pc.is_valid(parsed)) & left
            if not hit.any():
                continue
            local = _localize_arrow(pc.filter(parsed, pa.array(hit)), tz)
            if local is None:
                continue
            seconds[idx[hit]] = _arrow_seconds(local)
            ok[idx[hit]] = True
            left &= ~hit
            if not left.any():
                return
    idx = idx[left]
    ser = pd.Series(pc.filter(sub, pa.array(left)).to_pandas(), dtype="str")
    if aware:
        parsed_pd = pd.to_datetime(ser, format="ISO8601", utc=True, errors="coerce")
        good = parsed_pd.notna().to_numpy()
        seconds[idx[good]] = _epoch_seconds(parsed_pd[good])
        ok[idx[good]] = True
        return
    _localize(pd.to_datetime(ser, format="ISO8601", errors="coerce"), idx, tz, seconds, ok, gap)


def _localize(
    parsed: pd.Series, idx: IntArray, tz: ZoneInfo, seconds: IntArray, ok: BoolArray, gap: BoolArray
) -> None:
    good = parsed.notna().to_numpy()
    local = parsed[good].dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    lost = local.isna().to_numpy()
    gap[idx[good][lost]] = True
    kept = idx[good][~lost]
    seconds[kept] = _epoch_seconds(local[~lost])
    ok[kept] = True


def _parse_with(
    t: Any,
    rest: BoolArray,
    tz: ZoneInfo,
    seconds: IntArray,
    ok: BoolArray,
    gap: BoolArray,
    date_format: str,
) -> None:
    """Cells in the profile's `date_format`; those it reads leave `rest`."""
    idx = np.flatnonzero(rest)
    ser = pd.Series(pc.filter(t, pa.array(rest)).to_pandas(), dtype="str")
    parsed = pd.to_datetime(ser, format=date_format, errors="coerce")
    good = parsed.notna().to_numpy()
    if not good.any():
        return
    if parsed.dt.tz is None:
        _localize(parsed, idx, tz, seconds, ok, gap)
    else:
        seconds[idx[good]] = _epoch_seconds(parsed[good])
        ok[idx[good]] = True
    rest[idx[good]] = False
