"""Cutting a period's logs and ledger into day partitions that can be priced and matched apart.

A partition is one local day of the period (in the period's time zone; the first and last may
be part days when the period does not start or end at midnight). Pricing a log needs only
that log, so logs go to the day they were created. Matching a ledger row needs the log it
claims and every other row claiming the same log (the first by line wins, the rest are
duplicates), so ledger rows are routed by what they claim, never by their own date:

- a row that names a log (by log_id, or by request_id when it has no log_id) that is among the
  logs goes to that log's partition, even when the books date it on another day;
- a row that names no log goes, with every other row naming the same missing id, to the
  partition of the date of the first of them (by line); a row with no date, or dated outside
  the period, to the nearest end of the period.

A ledger with rows that name no usable id (paired with logs by content, match.tolerant) is
matched in one piece instead: such a row may pair with a log of a neighbouring day.

The lookup mirrors match_ledger's exactly (the first log in the logs' order with that id or
request id), so every partition judges its rows as the whole-period run judges them. Rows the
ledger could not read claim logs too (their finding covers the log): they go along with the
log they claim, and only to that partition.

Routing reads only the period's log ids and request ids (LogStore.columns), never a whole
log: the days themselves are read one at a time when they are priced and matched.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconcile.core.logstore import LogStore, day_edges, part_of_time
from reconcile.core.results import Ledger

IntArray = npt.NDArray[np.int64]


class LogKeys:
    """Where each log lives, found by id or request id as match_ledger finds them."""

    def __init__(self, logs: pd.DataFrame, log_part: IntArray) -> None:
        """`logs`: the period's `id` and `request_id` (if any) in the store's order."""
        ids = logs["id"].to_numpy(dtype=np.int64)
        self._order = np.argsort(ids, kind="stable").astype(np.int64)
        self._sorted = ids[self._order]
        self._part = log_part
        self._request_ids: pd.Series | None = None
        self._requests: pd.Series | None = None
        self.has_requests = False
        if "request_id" in logs:
            self._request_ids = logs["request_id"]
            self.has_requests = bool(self._request_ids.notna().any())

    def _request_index(self) -> pd.Series | None:
        """Position of the first log with each request id; built only when a row asks."""
        if self._requests is None and self.has_requests and self._request_ids is not None:
            reqs = self._request_ids.astype("string")
            has = reqs.notna().to_numpy()
            ser = pd.Series(
                np.flatnonzero(has).astype(np.int64),
                index=pd.Index(reqs[has].to_numpy(dtype=object), dtype="string"),
            )
            self._requests = ser[~ser.index.duplicated(keep="first")]
        return self._requests

    def by_id(self, ids: IntArray) -> IntArray:
        """Position of the first log with each id, -1 where none."""
        out = np.full(len(ids), -1, dtype=np.int64)
        if not len(self._sorted) or not len(ids):
            return out
        at = np.minimum(np.searchsorted(self._sorted, ids), len(self._sorted) - 1)
        hit = self._sorted[at] == ids
        out[hit] = self._order[at[hit]]
        return out

    def by_request(self, requests: pd.Series) -> IntArray:
        """Position of the first log with each request id, -1 where none."""
        index = self._request_index()
        if index is None or not len(requests):
            return np.full(len(requests), -1, dtype=np.int64)
        at = index.index.get_indexer(pd.Index(requests.to_numpy(dtype=object), dtype="string"))
        at = np.asarray(at, dtype=np.int64)
        values = index.to_numpy(dtype=np.int64)
        return np.where(at >= 0, values[np.maximum(at, 0)], -1).astype(np.int64)

    def claims(
        self, rows: pd.DataFrame, ids_usable: bool
    ) -> tuple[IntArray, npt.NDArray[np.bool_], pd.Series]:
        """(claimed log position or -1, claims by log_id, request ids) of each ledger row.

        As match_ledger: a log_id counts only when the gateway's ids are stable; else the
        request id, when the period's logs carry request ids.
        """
        n = len(rows)
        has_id = np.zeros(n, dtype=bool)
        if "log_id" in rows and ids_usable:
            has_id = rows["log_id"].notna().to_numpy()
        if "request_id" in rows:
            reqs = rows["request_id"].astype("string").reset_index(drop=True)
        else:
            reqs = pd.Series(pd.NA, index=range(n), dtype="string")
        pos = np.full(n, -1, dtype=np.int64)
        if has_id.any():
            ids = rows["log_id"].to_numpy(dtype=np.int64, na_value=0)
            pos[has_id] = self.by_id(ids[has_id])
        by_req = ~has_id & reqs.notna().to_numpy() & self.has_requests
        if by_req.any():
            pos[by_req] = self.by_request(reqs[by_req])
        return pos, has_id, reqs

    def part(self, pos: IntArray) -> IntArray:
        return np.where(pos >= 0, self._part[np.maximum(pos, 0)], -1).astype(np.int64)


def by_content(rows: pd.DataFrame, keys: LogKeys, ids_usable: bool) -> bool:
    """Whether any row would be paired with a log by its content (no usable id).

    Such a row may pair with a log of any day near its own (match.tolerant), so the ledger
    is then matched in one piece; pricing is still partitioned.
    """
    if not len(rows):
        return False
    keyed = np.zeros(len(rows), dtype=bool)
    if "log_id" in rows and ids_usable:
        keyed |= rows["log_id"].notna().to_numpy()
    if "request_id" in rows and keys.has_requests:
        keyed |= rows["request_id"].notna().to_numpy()
    return not bool(keyed.all())


def route_rows(rows: pd.DataFrame, keys: LogKeys, edges: IntArray, ids_usable: bool) -> IntArray:
    """Partition of each ledger row (rows in any order; see the module docstring)."""
    pos, has_id, reqs = keys.claims(rows, ids_usable)
    part = keys.part(pos)
    lost = np.flatnonzero(pos < 0)
    if not len(lost):
        return part
    times = rows["created_at"].to_numpy(dtype=np.int64, na_value=np.iinfo(np.int64).min)
    own = part_of_time(times[lost], edges)
    line = rows["line"].to_numpy(dtype=np.int64)[lost]
    ids = rows["log_id"].to_numpy(dtype=np.int64, na_value=0) if "log_id" in rows else None
    # the key match_ledger groups duplicates by: the named id, else the named request id
    named_req = reqs.notna().to_numpy()
    key = pd.DataFrame(
        {
            # rows naming neither share match_ledger's key 0 with rows naming log_id 0
            "kind": (has_id | ~named_req)[lost],
            "id": ids[lost] if ids is not None else np.zeros(len(lost), np.int64),
            "req": reqs.to_numpy(dtype=object)[lost],
            "line": line,
            "own": own,
        }
    )
    key.loc[key["kind"], "req"] = None
    key.loc[~key["kind"], "id"] = 0
    first = key.sort_values("line", kind="stable").groupby(
        ["kind", "id", "req"], dropna=False, sort=False
    )["own"]
    part[lost] = first.transform("first").to_numpy(dtype=np.int64)
    return part


def route_unreadable(unreadable: pd.DataFrame, keys: LogKeys, ids_usable: bool) -> IntArray:
    """Partition of the log each unreadable row claims, -1 where it claims none."""
    if not len(unreadable):
        return np.zeros(0, dtype=np.int64)
    frame = unreadable
    if "log_id" not in frame and "request_id" not in frame:
        return np.full(len(frame), -1, dtype=np.int64)
    pos, _, _ = keys.claims(frame, ids_usable)
    return keys.part(pos)


#: What routing reads of the logs: never a whole-period frame of every column.
KEY_COLUMNS = ["id", "request_id"]


@dataclass(frozen=True)
class Partitions:
    """The ledger's rows (readable and unreadable) by the day partition they are matched in."""

    rows: list[IntArray]
    unreadable: list[IntArray]
    #: whether any log of the period has a request id (as match_ledger decides it)
    has_requests: bool
    #: the ledger is matched in one piece (rows paired by content), not per partition
    ledger_whole: bool = False

    def ledger(self, ledger: Ledger, i: int) -> Ledger | None:
        """The ledger with only partition `i`'s rows; None when it is matched in one piece."""
        if self.ledger_whole:
            return None
        return replace(
            ledger,
            rows=ledger.rows.iloc[self.rows[i]].reset_index(drop=True),
            unreadable=ledger.unreadable.iloc[self.unreadable[i]].reset_index(drop=True),
        )

    def has_rows(self, i: int) -> bool:
        return not self.ledger_whole and bool(len(self.rows[i]) or len(self.unreadable[i]))


def partition(store: LogStore, ledger: Ledger | None, id_scheme: str = "stable") -> Partitions:
    """Route the ledger's rows to the days of the logs they claim, from the logs' key columns.

    `store`'s ids must be the ones the stages see (core.identity.UniqueIds).
    """
    edges = day_edges(store.period)
    n = store.days
    empty = [np.zeros(0, dtype=np.int64) for _ in range(n)]
    keys_frame = store.columns(KEY_COLUMNS)
    sizes = [len(store.day(i, ["created_at"])) for i in range(n)]
    log_part = np.repeat(np.arange(n, dtype=np.int64), sizes)
    keys = LogKeys(keys_frame, log_part)
    del keys_frame
    if ledger is None:
        return Partitions(empty, empty, keys.has_requests)
    ids_usable = id_scheme == "stable"
    if by_content(ledger.rows, keys, ids_usable):
        return Partitions(empty, empty, keys.has_requests, ledger_whole=True)

    def groups(part: IntArray) -> list[IntArray]:
        order = np.argsort(part, kind="stable").astype(np.int64)
        bounds = np.searchsorted(part[order], np.arange(n + 1))
        return [order[bounds[i] : bounds[i + 1]] for i in range(n)]

    rows = groups(route_rows(ledger.rows, keys, edges, ids_usable))
    bad = route_unreadable(ledger.unreadable, keys, ids_usable)
    return Partitions(rows, groups(bad) if len(bad) else empty, keys.has_requests)
