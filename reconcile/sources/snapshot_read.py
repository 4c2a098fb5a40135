"""A snapshot on disk as a LogStore: verified when opened, read a day at a time after.

`open_snapshot` proves the snapshot intact and consistent before a run trusts it: every file
matches the sha256 the manifest recorded, its rows add up to the manifest's counts (per day and
in total), every log lies inside its day and in one window of its key, no window holds more
logs than the ids it records, and no id (where ids are stable) or row key appears twice. It
does so a day at a time, from the few narrow columns the checks need, so opening a month of
tens of millions of logs holds one day's ids and keys, not the month. Reads after that check
each file's sha256 again as they read it: the logs a run uses are the logs that were verified.

A version 1 snapshot (one `logs.parquet`) is verified as it always was, read whole, and then
served from memory (core/logstore.FrameStore).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reconcile.core.logstore import FrameStore, LogStore, day_edges
from reconcile.core.period import Period
from reconcile.core.results import FetchResult
from reconcile.core.schema import LOG_COLUMNS, TYPE_CODES, TYPE_NAMES
from reconcile.errors import InputError
from reconcile.sources.items import row_keys
from reconcile.sources.snapshot_manifest import (
    ARROW_SCHEMA,
    COLUMNS,
    DTYPES,
    LOGS_FILE,
    MANIFEST_FILE,
    StoredFetch,
    add_counts,
    counts_of,
    day_file,
    find_snapshot,
    load_manifest,
    meta_of,
    no_logs,
    plain_name,
)

#: What verification reads of each file: enough for counts, windows, ids and row keys.
_CHECKED = ["id", "created_at", "type", "key_ref", "quota", "row_key"]
_TEXT = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}


class SnapshotStore:
    """A verified snapshot directory: its period's logs by local day (core.logstore.LogStore),
    `meta` (the FetchResult without its logs) and `directory`."""

    def __init__(
        self,
        directory: Path,
        manifest: dict[str, Any],
        meta: FetchResult,
        frame: FrameStore | None = None,
    ) -> None:
        self._directory = directory
        self._manifest = manifest
        values = {f.name: getattr(meta, f.name) for f in fields(FetchResult)}
        self._meta = StoredFetch(**{**values, "logs": no_logs()}, store=self)
        self._frame = frame  # a version 1 snapshot, held whole
        self._files: list[dict[str, Any]] = (
            [manifest["files"]["logs"]] if frame is not None else manifest["files"]
        )

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def meta(self) -> StoredFetch:
        return self._meta

    @property
    def manifest(self) -> dict[str, Any]:
        return self._manifest

    @property
    def files(self) -> list[tuple[str, str]]:
        """(name, sha256) of every logs file, in day order."""
        return [(str(f["name"]), str(f["sha256"])) for f in self._files]

    @property
    def period(self) -> Period:
        return self._meta.period

    def __len__(self) -> int:
        return int(self._manifest["counts"]["logs"])

    @property
    def days(self) -> int:
        return len(day_edges(self.period)) - 1

    def day(self, i: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
        if self._frame is not None:
            return self._frame.day(i, columns)
        if not 0 <= i < self.days:
            raise IndexError(f"day {i} of a period of {self.days} days")
        names = list(COLUMNS if columns is None else columns)
        entry = self._files[i]
        path = self._directory / entry["name"]
        data = read_verified(path, entry["sha256"])
        if entry["rows"] == 0:  # verified when opened: a file of no rows
            return no_logs()[names]
        return frame_of(_table(data, path, names), names, path)

    def columns(self, names: Sequence[str]) -> pd.DataFrame:
        if self._frame is not None:
            return self._frame.columns(names)
        parts = [self.day(i, names) for i in range(self.days) if self._files[i]["rows"]]
        if not parts:
            return no_logs()[list(names)]
        return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)

    def at(self, directory: Path) -> SnapshotStore:
        """The same snapshot after its directory was moved to `directory` (as a report
        directory is, when it is complete): its files are checked again as they are read."""
        return SnapshotStore(Path(directory), self._manifest, self._meta, self._frame)


def open_snapshot(directory: Path) -> SnapshotStore:
    """The verified snapshot in `directory` (a snapshot or a report directory holding one);
    InputError (exit 2) naming the file if anything does not match."""
    snap = find_snapshot(directory)
    path = snap / MANIFEST_FILE
    body = load_manifest(path)
    meta = meta_of(body, path)
    check = _Check(meta, path)
    if body["schema_version"] == 1:
        logs = _version1_logs(snap, body, path)
        check.part(logs, logs_path=snap / LOGS_FILE)
        check.finish(body["counts"], lambda: [logs["row_key"]])
        return SnapshotStore(snap, body, meta, FrameStore(logs, meta.period))
    entries = body.get("files")
    edges = day_edges(meta.period)
    if not isinstance(entries, list) or len(entries) != len(edges) - 1:
        raise InputError(
            f"the manifest must list one logs file per day of the period ({len(edges) - 1})",
            file=path,
            field="files",
        )
    for i, entry in enumerate(entries):
        try:
            name, sha, rows = entry["name"], entry["sha256"], int(entry["rows"])
            start, end = int(entry["start_ts"]), int(entry["end_ts"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"malformed files entry {i} ({exc})", file=path, field="files"
            ) from None
        expected = day_file(meta.period, int(edges[i]))
        if not plain_name(name) or name != expected:
            raise InputError(f"files entry {i} must name {expected}", file=path)
        if (start, end) != (edges[i], edges[i + 1]):
            raise InputError(f"{name}: its bounds are not the period's day {i}", file=path)
        logs_path = snap / name
        table = _table(read_verified(logs_path, sha), logs_path, _CHECKED)
        if table.num_rows != rows:
            raise InputError(
                f"the manifest records {rows} rows in {name}, it holds {table.num_rows}", file=path
            )
        check.part(frame_of(table, _CHECKED, logs_path), logs_path, entry)

    def every_row_key() -> Iterator[pd.Series]:
        for entry in entries:
            logs_path = snap / entry["name"]
            table = _table(read_verified(logs_path, entry["sha256"]), logs_path, ["row_key"])
            yield frame_of(table, ["row_key"], logs_path)["row_key"]

    check.finish(body["counts"], every_row_key)
    return SnapshotStore(snap, body, meta)


def read_verified(path: Path, sha256: object) -> bytes:
    """The file's bytes, if they are the ones the manifest recorded."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the snapshot's logs: {exc.strerror}", file=path) from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise InputError(
            "the logs file does not match the manifest's sha256: it was modified or replaced",
            file=path,
        )
    return data


def _table(data: bytes, path: Path, names: list[str]) -> pa.Table:
    """`names` of the Parquet file, each of its snapshot type (InputError otherwise)."""
    try:
        pf = pq.ParquetFile(io.BytesIO(data))
        schema = pf.schema_arrow
        missing = [c for c in names if c not in schema.names]
        if missing:
            raise InputError(f"columns missing: {', '.join(missing)}", file=path, field=missing[0])
        wrong = [c for c in names if schema.field(c).type != ARROW_SCHEMA.field(c).type]
        if wrong:
            raise InputError(f"columns of the wrong type: {', '.join(wrong)}", file=path)
        return pf.read(columns=names)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"not a readable Parquet file ({exc})", file=path) from None


def frame_of(table: pa.Table, names: Sequence[str], path: Path) -> pd.DataFrame:
    """The table as a frame of the logs' dtypes (those of schema.LOG_DTYPES, row_key text)."""
    df: pd.DataFrame = table.to_pandas(types_mapper=_TEXT.get)  # text as "string" at once
    wanted = {c: DTYPES[c] for c in names}
    if all(str(df[c].dtype) == t for c, t in wanted.items()):
        return df
    try:
        return df.astype(wanted)
    except (TypeError, ValueError) as exc:
        raise InputError(f"columns of the wrong type ({exc})", file=path) from None


def _version1_logs(snap: Path, body: dict[str, Any], path: Path) -> pd.DataFrame:
    """A version 1 snapshot's one logs file, whole, as it was always read."""
    try:
        entry = body["files"]["logs"]
        name, sha, rows = entry["name"], entry["sha256"], int(entry["rows"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"incomplete or malformed manifest ({exc})", file=path) from None
    if not plain_name(name):
        raise InputError(
            "the logs file name must be a plain file name", file=path, field="files.logs.name"
        )
    logs_path = snap / name
    data = read_verified(logs_path, sha)
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"not a readable Parquet file ({exc})", file=logs_path) from None
    missing = [c for c in LOG_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"columns missing: {', '.join(missing)}", file=logs_path, field=missing[0])
    df = frame_of(table.select(LOG_COLUMNS), LOG_COLUMNS, logs_path)
    if "row_key" in table.column_names:
        df["row_key"] = table.column("row_key").to_pandas().astype("string")
    else:  # written before row keys existed
        df["row_key"] = row_keys(df)
    if len(df) != rows:
        raise InputError(
            f"the manifest counts {rows} logs, the logs file holds {len(df)}", file=path
        )
    return df


class _Check:
    """The manifest's claims checked part by part (a day's file, or a version 1 file whole):
    what can be checked within a part is, at once; what spans parts (totals, windows, unique
    ids and row keys) is accumulated from narrow columns and checked by `finish`."""

    def __init__(self, meta: FetchResult, manifest_path: Path) -> None:
        self.meta = meta
        self.path = manifest_path
        self.parts: list[dict[str, Any]] = []
        self.held = np.zeros(len(meta.windows), dtype=np.int64)
        self.ids: list[np.ndarray[Any, Any]] = []
        self.hashes: list[np.ndarray[Any, Any]] = []  # of the row keys: 8 bytes a log

    def bad(self, message: str, file: Path | None = None) -> InputError:
        return InputError(message, file=file or self.path)

    def part(
        self, logs: pd.DataFrame, logs_path: Path, entry: dict[str, Any] | None = None
    ) -> None:
        period = self.meta.period
        types = set(logs["type"].unique().tolist())
        if not types <= set(TYPE_NAMES):
            raise self.bad(f"{logs_path.name} holds log types {sorted(types - set(TYPE_NAMES))}")
        times = logs["created_at"].to_numpy()
        if entry is None:
            lo, hi, where = period.start_ts, period.end_ts, f"the period {period.label}"
        else:
            day = logs_path.name.removeprefix("logs-").removesuffix(".parquet")
            lo, hi, where = int(entry["start_ts"]), int(entry["end_ts"]), f"its day {day}"
        outside = int(((times < lo) | (times >= hi)).sum())
        if outside:
            raise self.bad(f"{outside} logs of {logs_path.name} lie outside {where}")
        counts = counts_of(logs)
        if entry is not None:
            said = {k: entry.get(k) for k in ("by_type", "by_key")}
            got = {"by_type": counts["by_type"], "by_key": counts["by_key"]}
            if said != got:
                raise self.bad(f"{logs_path.name}: the manifest says {said}, the file holds {got}")
        self.parts.append(counts)
        self._windows(logs, times, logs_path)
        if self.meta.id_scheme == "stable":
            self.ids.append(logs["id"].to_numpy(dtype=np.int64))
        if logs["row_key"].duplicated().any():
            raise self.bad(f"{logs_path.name} holds the same row key twice")
        self.hashes.append(pd.util.hash_pandas_object(logs["row_key"], index=False).to_numpy())

    def _windows(self, logs: pd.DataFrame, times: Any, logs_path: Path) -> None:
        """Count each window's logs here; every log must lie in some window of its key."""
        if not self.meta.windows or not len(logs):
            return
        keys = logs["key_ref"].astype(str).to_numpy()
        first, last = int(times.min()), int(times.max())
        covered = np.zeros(len(logs), dtype=bool)
        for n, w in enumerate(self.meta.windows):
            if w.end < first or w.start > last:
                continue
            here = (keys == w.key_ref) & (times >= w.start) & (times <= w.end)
            self.held[n] += int(here.sum())
            covered |= here
        if not covered.all():
            raise self.bad(f"{int((~covered).sum())} logs lie in no window the manifest records")

    def finish(self, counts: Any, row_keys: Callable[[], Iterable[pd.Series]]) -> None:
        """Check what spans the parts; `row_keys` reads every part's row keys again, only
        needed when two parts' keys hash alike (a repeated key, or a 64-bit collision)."""
        try:
            self._finish(counts, row_keys)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self.bad(f"malformed manifest counts ({type(exc).__name__}: {exc})") from None

    def _finish(self, counts: Any, row_keys: Callable[[], Iterable[pd.Series]]) -> None:
        total = add_counts(self.parts, self.meta.key_refs)
        if total["logs"] != counts["logs"]:
            raise self.bad(
                f"the manifest counts {counts['logs']} logs, the logs files hold {total['logs']}"
            )
        for name, want in counts["by_type"].items():
            got = total["by_type"].get(name)
            if name not in TYPE_CODES or got != want:
                raise self.bad(f"{name} logs: the manifest says {want}, the logs files hold {got}")
        if total["by_key"] != counts["by_key"] or sum(total["by_key"].values()) != total["logs"]:
            seen = add_counts(self.parts, sorted({k for p in self.parts for k in p["by_key"]}))
            raise self.bad(
                f"logs per key: the manifest says {counts['by_key']}, the logs files hold "
                f"{seen['by_key']}"
            )
        if _repeated(self.ids):
            raise self.bad("the logs files hold the same log id twice")
        if _repeated(self.hashes) and _repeats(row_keys()):
            raise self.bad("the logs files hold the same row key twice")
        for w, held in zip(self.meta.windows, self.held.tolist(), strict=True):
            if held > w.ids:
                raise self.bad(
                    f"window {w.start}..{w.end} of {w.key_ref}: the manifest records {w.ids} ids "
                    f"but the logs files hold {held} logs in it"
                )


def _repeated(parts: list[np.ndarray[Any, Any]]) -> bool:
    """Whether any number repeats across the parts (sorted in place: no copy but the one)."""
    if not parts:
        return False
    every = np.concatenate(parts)
    parts.clear()
    every.sort()
    return bool((every[1:] == every[:-1]).any())


def _repeats(parts: Iterable[pd.Series]) -> bool:
    """Whether any text repeats across the parts (exactly, not by hash)."""
    chunks = []
    for part in parts:
        keys = pa.array(part)
        keys = keys if isinstance(keys, pa.ChunkedArray) else pa.chunked_array([keys])
        chunks.extend(keys.cast(pa.large_string()).chunks)
    every = pa.chunked_array(chunks, type=pa.large_string())
    return bool(pc.count_distinct(every).as_py() != len(every))


def with_logs(store: SnapshotStore) -> FetchResult:
    """The store's FetchResult with every log in memory (for tests and small runs)."""
    values = {f.name: getattr(store.meta, f.name) for f in fields(FetchResult)}
    return FetchResult(**{**values, "logs": store.columns(COLUMNS)})


if TYPE_CHECKING:  # mypy proves the store serves every stage that reads a LogStore
    _STORE: type[LogStore] = SnapshotStore
