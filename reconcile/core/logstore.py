"""A period's logs, readable one local day at a time, so no stage must hold the month.

An operator's month can be tens of millions of logs, several times what one machine holds as a
DataFrame (about 0.4 GB per million logs with their `content` and `other`). Every stage after
the source needs either one day's logs whole (pricing, matching) or a few narrow columns of the
whole period (ids and times to route ledger rows, sums for the report). `LogStore` offers
exactly those two reads. `FrameStore` is the store of logs already in memory (a fetch through
the HTTP API, tests); the snapshot on disk is the other (sources/snapshot.py), read a day at a
time.

Days are the period's local days (`day_edges`): the first and last may be part days when the
period does not start or end at midnight. Within a day, logs keep the store's order (the
snapshot's canonical order: created_at, id, key_ref, row_key), and `columns` returns the whole
period in the same order as the days concatenated.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, time, timedelta
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconcile.core.period import Period

IntArray = npt.NDArray[np.int64]


def day_edges(period: Period) -> IntArray:
    """Unix seconds of the period's start, each local midnight inside it, and its end."""
    tz = period.tz
    edges = [period.start_ts]
    day = period.start.astimezone(tz).date()
    while True:
        day += timedelta(days=1)
        midnight = int(datetime.combine(day, time(), tz).timestamp())
        if midnight >= period.end_ts:
            break
        edges.append(midnight)
    edges.append(period.end_ts)
    return np.asarray(edges, dtype=np.int64)


def part_of_time(seconds: IntArray, edges: IntArray) -> IntArray:
    """Partition index of each time; times outside the period go to the nearest end."""
    parts = np.searchsorted(edges, seconds, side="right").astype(np.int64) - 1
    return np.clip(parts, 0, len(edges) - 2)


class LogStore(Protocol):
    """A period's logs (schema.LOG_DTYPES, plus `row_key` where known), by local day."""

    @property
    def period(self) -> Period: ...

    def __len__(self) -> int:
        """How many logs the whole period holds."""
        ...

    @property
    def days(self) -> int:
        """How many day partitions: len(day_edges(period)) - 1."""
        ...

    def day(self, i: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Day `i`'s logs (every column, or only `columns`), in the store's order."""
        ...

    def columns(self, names: Sequence[str]) -> pd.DataFrame:
        """Only `names`, for the whole period, in the order of the days concatenated."""
        ...


class FrameStore:
    """Logs already in memory, cut into days without copying more than one day at a time."""

    def __init__(self, logs: pd.DataFrame, period: Period) -> None:
        created = logs["created_at"].to_numpy(dtype=np.int64, na_value=period.start_ts)
        edges = day_edges(period)
        part = part_of_time(created, edges)
        # stable: a day keeps the frame's order; the days concatenated are the frame re-cut
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(len(edges)), side="left")
        self._logs = logs
        self._period = period
        self._order = order.astype(np.int64)
        self._bounds = bounds.astype(np.int64)

    @property
    def period(self) -> Period:
        return self._period

    @property
    def frame(self) -> pd.DataFrame:
        """The logs as given (their original order)."""
        return self._logs

    def __len__(self) -> int:
        return len(self._logs)

    @property
    def days(self) -> int:
        return len(self._bounds) - 1

    def rows_of_day(self, i: int) -> IntArray:
        """Positions in `frame` of day `i`'s logs."""
        out: IntArray = self._order[self._bounds[i] : self._bounds[i + 1]]
        return out

    def day(self, i: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
        frame = self._logs if columns is None else self._logs[list(columns)]
        return frame.iloc[self.rows_of_day(i)].reset_index(drop=True)

    def columns(self, names: Sequence[str]) -> pd.DataFrame:
        return self._logs[list(names)].iloc[self._order].reset_index(drop=True)

    def iter_days(self) -> Iterator[pd.DataFrame]:
        for i in range(self.days):
            yield self.day(i)
