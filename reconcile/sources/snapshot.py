"""Snapshots of a fetch: the logs as Parquet, one file per local day, plus a manifest.

A snapshot lets a run be repeated offline (`--from-snapshot`) and audited later, so it must be
trustworthy: opening one refuses a snapshot whose files no longer match the sha256 the
manifest recorded, or whose counts disagree with its logs. Writing is deterministic (the same
logs give byte-identical files) and holds no API key: keys appear only as refs. A month may be
far larger than memory, so a snapshot is written a day at a time and read a day at a time.

Layout of a snapshot directory (version 2):
    logs-YYYY-MM-DD.parquet  one per local day of the period (the first and last may be part
                    days), even a day without logs: the logs table (schema.LOG_DTYPES plus
                    `row_key`, our own stable key of each row), ordered by created_at, id,
                    key_ref, row_key
    manifest.json   schema_version, period, fetched_at, base_url, source, id_scheme, key
                    refs, windows, counts, the gateway's own sum, files (name, day, its
                    bounds, rows, bytes, sha256, that day's counts by type and by key) and
                    content_sha256 over all of it
Version 1 (one `logs.parquet`, `files.logs` in the manifest) is still read. Snapshots written
before `source`, `id_scheme` and `row_key` existed read as the token source with stable ids,
their row keys computed on reading.

Modules: snapshot_manifest.py (the manifest), snapshot_write.py (SnapshotWriter, copying),
snapshot_read.py (SnapshotStore: verifying, reading by day). This one is what callers import.
"""

from __future__ import annotations

from pathlib import Path

from reconcile.core.results import FetchResult
from reconcile.sources.snapshot_manifest import (
    ID_SCHEMES,
    LOGS_FILE,
    MANIFEST_FILE,
    SCHEMA_VERSION,
    SNAPSHOT_DIR,
    StoredFetch,
    find_snapshot,
)
from reconcile.sources.snapshot_read import SnapshotStore, open_snapshot, with_logs
from reconcile.sources.snapshot_write import SnapshotWriter, copy_snapshot, write_snapshot

__all__ = [
    "ID_SCHEMES",
    "LOGS_FILE",
    "MANIFEST_FILE",
    "SCHEMA_VERSION",
    "SNAPSHOT_DIR",
    "SnapshotStore",
    "SnapshotWriter",
    "StoredFetch",
    "copy_snapshot",
    "find_snapshot",
    "open_snapshot",
    "read_snapshot",
    "save_snapshot",
    "write_snapshot",
]


def read_snapshot(directory: Path) -> FetchResult:
    """Open, verify and load a snapshot whole: every log in memory (tests, small runs; a run
    of any size reads `open_snapshot(directory)` a day at a time). InputError naming the file
    if anything does not match. `directory` is a snapshot or a report directory holding one."""
    return with_logs(open_snapshot(directory))


def save_snapshot(fetched: FetchResult, directory: Path) -> Path:
    """Store `fetched` as a snapshot in `directory`: a copy of its files where its logs are
    already a snapshot on disk (StoredFetch), else written from the logs in memory."""
    if isinstance(fetched, StoredFetch):
        return copy_snapshot(fetched.store, directory)
    return write_snapshot(fetched, directory)
