"""A period's logs fetched straight into a snapshot on disk, the store every later stage reads.

The gateway's database hands its logs over a day at a time (sources/database.py), each day
proven complete before the next is read; each goes into the snapshot writer and is written
and dropped, so fetching a month holds one day of logs, never the month. The HTTP sources
prove a read complete only over the whole period (windows, repairs, the gateway's own sum),
so they fetch as before and then write.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reconcile.core.period import Period
from reconcile.sources.base import LogSource
from reconcile.sources.database import DatabaseSource
from reconcile.sources.progress import ProgressHook
from reconcile.sources.snapshot import SnapshotStore, SnapshotWriter


def fetch_into(
    source: LogSource, period: Period, directory: Path, progress: ProgressHook | None = None
) -> SnapshotStore:
    """Fetch `period` from `source` into a snapshot in `directory` (created if needed; an
    earlier snapshot there is replaced); the snapshot, ready to read a day at a time.

    If the fetch fails, `directory` holds no manifest, so no snapshot: it may hold some days'
    files, which the caller's staging directory (core/atomic.py) removes."""
    writer = SnapshotWriter(directory, period)
    if isinstance(source, DatabaseSource):

        def write(day: pd.DataFrame, until: int) -> None:
            writer.add(day)
            writer.flush(until)

        meta = source.stream(period, write, progress)
    else:
        meta = source.fetch(period, progress)
        writer.add(meta.logs)
    return writer.finish(meta)
