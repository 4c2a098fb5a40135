"""One identity per log for the stages after the source, whatever ids the gateway shows.

Pricing, matching and the report key logs by `id`. A current new-api shows a user the row's
position in the answer (or `id % 1024`), so two logs of one month can share an id; keyed by
it, logs would be merged or a join would fail. Where the ids are not stable, the later stages
number the logs 1..N in (created_at, row_key) order instead — row_key is our own content key,
unique within the snapshot — so a rerun from the snapshot numbers them the same way. The
gateway's id stays beside it as `gateway_id` and is what the snapshot stores.

The numbering follows created_at first, and a log's local day follows its created_at, so the
month numbered day by day (each day from where the days before it ended) is numbered exactly
as the month in one piece: `UniqueIds` does that over a LogStore without holding the month.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from reconcile.core.logstore import IntArray, LogStore
from reconcile.core.period import Period
from reconcile.core.results import FetchResult
from reconcile.sources.items import row_keys

STABLE = "stable"


def renumbered(logs: pd.DataFrame, first: int = 1) -> pd.DataFrame:
    """`logs` (rows in their order) with `id` first.. in (created_at, row_key) order, the
    gateway's id kept as `gateway_id`."""
    logs = logs.copy()
    if "row_key" not in logs.columns:
        logs["row_key"] = row_keys(logs)
    order = np.lexsort((logs["row_key"].to_numpy(dtype=object), logs["created_at"].to_numpy()))
    ids = np.empty(len(logs), dtype="int64")
    ids[order] = np.arange(first, first + len(logs), dtype="int64")
    logs["gateway_id"] = logs["id"]
    logs["id"] = pd.Series(ids, index=logs.index, dtype=logs["id"].dtype)
    return logs


def with_unique_ids(fetched: FetchResult) -> FetchResult:
    """`fetched` as is when its ids are stable; otherwise with `id` renumbered (see above)."""
    if fetched.id_scheme == STABLE or "gateway_id" in fetched.logs.columns:
        return fetched
    return replace(fetched, logs=renumbered(fetched.logs))


class UniqueIds:
    """A LogStore whose ids are the month's renumbering (above), computed one day at a time.

    With stable ids it reads through. Otherwise a day's ids start after the logs of the days
    before it, so `day(i)` equals day `i` cut out of the whole month renumbered.
    """

    def __init__(self, store: LogStore, id_scheme: str) -> None:
        self.inner = store
        self.stable = id_scheme == STABLE
        sizes = [0] * store.days
        if not self.stable:
            sizes = [len(store.day(i, ["created_at"])) for i in range(store.days)]
        #: the first id of each day, less one (0 for the first day)
        self.offsets: IntArray = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    @property
    def period(self) -> Period:
        return self.inner.period

    def __len__(self) -> int:
        return len(self.inner)

    @property
    def days(self) -> int:
        return self.inner.days

    def day(self, i: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
        if self.stable or (columns is not None and "id" not in columns):
            return self.inner.day(i, columns)
        logs = renumbered(self.inner.day(i), int(self.offsets[i]) + 1)
        return logs if columns is None else logs[list(columns)]

    def columns(self, names: Sequence[str]) -> pd.DataFrame:
        if self.stable or "id" not in names:
            return self.inner.columns(names)
        days = [self.day(i, names) for i in range(self.days)]
        return pd.concat(days, ignore_index=True) if days else self.inner.columns(names)
