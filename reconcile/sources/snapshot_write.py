"""Writing a snapshot a day at a time, and copying one without re-encoding it.

A month read from the gateway's database is tens of millions of logs; the writer takes them
in pieces (`add`) and writes each local day's file as soon as the day is complete (`flush`),
so it holds one day's logs, never the month. The manifest is written last (`finish`): until
then the directory holds no snapshot a reader would open, and a reader never sees a manifest
describing files that are not all there. Every file is written to a temporary name and
renamed.

Writing is deterministic: a day's logs are put in canonical order (created_at, id, key_ref,
row_key) and encoded the same way whatever order or pieces they arrived in, so the same logs
give byte-identical files, and a report's snapshot can be a copy of the snapshot it was run
from (`copy_snapshot`). No API key is written: keys appear only as refs.
"""

from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reconcile.core.atomic import atomic_write_bytes
from reconcile.core.logstore import day_edges, part_of_time
from reconcile.core.period import Period
from reconcile.core.results import FetchResult
from reconcile.core.schema import LOG_COLUMNS, LOG_DTYPES
from reconcile.errors import InputError
from reconcile.sources.items import row_keys
from reconcile.sources.snapshot_manifest import (
    ARROW_SCHEMA,
    MANIFEST_FILE,
    SORT,
    add_counts,
    counts_of,
    day_file,
    load_manifest,
    manifest,
    manifest_bytes,
)
from reconcile.sources.snapshot_read import SnapshotStore, read_verified


class SnapshotWriter:
    """A snapshot of `period` written into `directory` (created if needed) a day at a time."""

    def __init__(self, directory: Path, period: Period) -> None:
        self.directory = Path(directory)
        self.period = period
        self._edges = day_edges(period)
        self._pending: list[tuple[pd.DataFrame, np.ndarray[Any, Any]]] = []
        self._files: list[dict[str, Any]] = []  # one per day written, in order
        self.directory.mkdir(parents=True, exist_ok=True)
        # an earlier snapshot here stops being one before any of its files is replaced
        (self.directory / MANIFEST_FILE).unlink(missing_ok=True)

    @property
    def days_written(self) -> int:
        return len(self._files)

    def add(self, logs: pd.DataFrame) -> None:
        """Logs of any days not yet written, in any order (a log outside the period goes to
        its nearest day, where reading the snapshot refuses it)."""
        if not len(logs):
            return
        created = logs["created_at"].to_numpy(dtype=np.int64)
        day = part_of_time(created, self._edges)
        if int(day.min()) < self.days_written:
            raise ValueError(f"logs of day {int(day.min())}, already written")
        self._pending.append((logs, day))

    def flush(self, until: int) -> None:
        """Write every day that ends at or before `until` (unix seconds): no more logs of it
        will be added."""
        while (
            self.days_written < len(self._edges) - 1 and self._edges[self.days_written + 1] <= until
        ):
            self._write_day()

    def finish(self, meta: FetchResult) -> SnapshotStore:
        """Write the remaining days, then the manifest of `meta` (its logs are not read; the
        days written are the snapshot's logs); the snapshot, as a store."""
        self.flush(int(self._edges[-1]))
        names = {f["name"] for f in self._files}
        for stale in self.directory.glob("logs*.parquet"):  # an earlier snapshot's files
            if stale.name not in names:
                stale.unlink()
        counts = add_counts(self._files, list(meta.key_refs))
        files = [{k: v for k, v in f.items() if k != "logs"} for f in self._files]
        body = manifest(meta, files, counts)
        atomic_write_bytes(self.directory / MANIFEST_FILE, manifest_bytes(body))
        return SnapshotStore(self.directory, body, meta)

    def _write_day(self) -> None:
        i = self.days_written
        pieces, kept = [], []
        for logs, day in self._pending:
            here = day == i
            if here.all():
                pieces.append(logs)
                continue
            if here.any():
                pieces.append(logs.iloc[np.flatnonzero(here)])
            kept.append((logs, day))
        self._pending = kept
        if not pieces:
            data, counts = _empty_day()
        else:
            logs = pieces[0] if len(pieces) == 1 else pd.concat(pieces, ignore_index=True)
            del pieces
            canonical = _canonical_logs(logs)
            del logs
            data, counts = _parquet_bytes(canonical), counts_of(canonical)
            del canonical
        name = day_file(self.period, int(self._edges[i]))
        atomic_write_bytes(self.directory / name, data)
        self._files.append(
            {
                "name": name,
                "day": name.removeprefix("logs-").removesuffix(".parquet"),
                "start_ts": int(self._edges[i]),
                "end_ts": int(self._edges[i + 1]),
                "rows": counts["logs"],
                "bytes": len(data),
                "sha256": _sha256(data),
                "by_type": counts["by_type"],
                "by_key": counts["by_key"],
                "logs": counts["logs"],  # for the totals; not written per file
            }
        )


def write_snapshot(result: FetchResult, directory: Path) -> Path:
    """Write `result` (its logs in memory) into `directory`; returns `directory`."""
    writer = SnapshotWriter(directory, result.period)
    writer.add(result.logs)
    writer.finish(result)
    return Path(directory)


def copy_snapshot(store: SnapshotStore, directory: Path) -> Path:
    """Copy the store's files byte for byte into `directory` (created if needed), each checked
    against the manifest's sha256 on the way, the manifest last; returns `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, sha in store.files:
        atomic_write_bytes(directory / name, read_verified(store.directory / name, sha))
    source = store.directory / MANIFEST_FILE
    if load_manifest(source) != store.manifest:
        raise InputError("the manifest changed after the snapshot was opened", file=source)
    atomic_write_bytes(directory / MANIFEST_FILE, source.read_bytes())
    return directory


@functools.cache
def _empty_day() -> tuple[bytes, dict[str, Any]]:
    """The file and counts of a day without logs (most days of a small test month)."""
    empty = _canonical_logs(pd.DataFrame({c: pd.Series(dtype=t) for c, t in LOG_DTYPES.items()}))
    return _parquet_bytes(empty), counts_of(empty)


def _canonical_logs(logs: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in LOG_COLUMNS if c not in logs.columns]
    if missing:
        raise ValueError(f"the logs table lacks columns {missing}")
    same = all(str(logs[c].dtype) == t for c, t in LOG_DTYPES.items())
    df = logs[LOG_COLUMNS] if same else logs[LOG_COLUMNS].astype(LOG_DTYPES)
    if "gateway_id" in logs.columns:  # later stages renumbered ids (core.identity): store the shown
        df["id"] = logs["gateway_id"].to_numpy(dtype="int64")
    # row keys are per day as they are per month: rows of equal content share created_at
    df["row_key"] = logs["row_key"].astype("string") if "row_key" in logs else row_keys(df)
    return df.sort_values(SORT, kind="mergesort").reset_index(drop=True)


def _parquet_bytes(logs: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(logs, schema=ARROW_SCHEMA, preserve_index=False)
    table = table.replace_schema_metadata(None)  # no library versions: the same bytes each time
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", use_dictionary=True)
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
