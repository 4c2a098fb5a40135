"""Snapshots of a fetch: the logs as Parquet plus a manifest with counts and a content hash.

A snapshot lets a run be repeated offline (`--from-snapshot`) and audited later, so it must be
trustworthy: `read_snapshot` refuses a snapshot whose files no longer match the sha256 the
manifest recorded, or whose counts disagree with its logs. Writing is deterministic (the same
FetchResult gives byte-identical files) and holds no API key: keys appear only as refs.

Layout of a snapshot directory:
    logs.parquet    the logs table (schema.LOG_DTYPES plus `row_key`, our own stable key of
                    each row), ordered by created_at, id, key_ref, row_key
    manifest.json   schema_version, period, fetched_at, base_url, source, id_scheme, key
                    refs, windows, counts, the gateway's own sum, files (name, rows, bytes,
                    sha256) and content_sha256 over all of it

Snapshots written before `source`, `id_scheme` and `row_key` existed read as the token
source with stable ids, their row keys computed on reading.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reconcile.core.period import Period
from reconcile.core.results import FetchResult, WindowRecord
from reconcile.core.schema import LOG_COLUMNS, LOG_DTYPES, TYPE_CODES, TYPE_NAMES
from reconcile.core.urls import origin
from reconcile.errors import InputError
from reconcile.sources.items import row_keys

#: How a snapshot's log ids may be read (sources/engine.py names them when it fetches).
ID_SCHEMES = ("stable", "mod1024", "position")

SCHEMA_VERSION = 1
KIND = "reconcile-snapshot"
LOGS_FILE = "logs.parquet"
MANIFEST_FILE = "manifest.json"
SNAPSHOT_DIR = "snapshot"  # inside a report directory

_ARROW_TYPES = {"int64": pa.int64(), "string": pa.string(), "bool": pa.bool_()}
_COLUMNS = [*LOG_COLUMNS, "row_key"]
_ARROW_SCHEMA = pa.schema(
    [pa.field(c, _ARROW_TYPES[t]) for c, t in {**LOG_DTYPES, "row_key": "string"}.items()]
)
_SORT = ["created_at", "id", "key_ref", "row_key"]


# --------------------------------------------------------------------------------------------
# writing


def write_snapshot(result: FetchResult, directory: Path) -> Path:
    """Write `result` into `directory` (created if needed); returns `directory`.

    Each file is written to a temporary name and renamed, the manifest last, so a reader
    never sees a manifest describing files that are not all there.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    logs = _canonical_logs(result.logs)
    data = _parquet_bytes(logs)
    manifest = _manifest(result, logs, data)
    _atomic_write(directory / LOGS_FILE, data)
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    _atomic_write(directory / MANIFEST_FILE, text.encode("utf-8"))
    return directory


def _canonical_logs(logs: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in LOG_COLUMNS if c not in logs.columns]
    if missing:
        raise ValueError(f"the logs table lacks columns {missing}")
    df = logs[LOG_COLUMNS].astype(LOG_DTYPES)
    if "gateway_id" in logs.columns:  # later stages renumbered ids (core.identity): store the shown
        df["id"] = logs["gateway_id"].to_numpy(dtype="int64")
    df["row_key"] = logs["row_key"].astype("string") if "row_key" in logs else row_keys(df)
    return df.sort_values(_SORT, kind="mergesort").reset_index(drop=True)


def _parquet_bytes(logs: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(logs, schema=_ARROW_SCHEMA, preserve_index=False)
    table = table.replace_schema_metadata(None)  # no library versions: the same bytes each time
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", use_dictionary=True)
    return buf.getvalue()


def _manifest(result: FetchResult, logs: pd.DataFrame, data: bytes) -> dict[str, Any]:
    period = result.period
    tz = period.tz

    def iso(ts: int) -> str:
        return datetime.fromtimestamp(ts, tz).isoformat()

    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "period": {
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "timezone": period.timezone,
            "label": period.label,
        },
        "fetched_at": result.fetched_at.isoformat(),
        "base_url": _origin(result.base_url),
        "key_refs": list(result.key_refs),
        "source": result.source,
        "id_scheme": result.id_scheme,
        "gateway_stat_quota": result.gateway_stat_quota,
        "warnings": list(result.warnings),
        "files": {
            "logs": {
                "name": LOGS_FILE,
                "rows": len(logs),
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        },
        "counts": _counts(logs, result),
        "windows": [
            {
                "key_ref": w.key_ref,
                "start": iso(w.start),
                "end": iso(w.end),
                "start_ts": w.start,
                "end_ts": w.end,
                "total": w.total,
                "ids": w.ids,
                "pages": w.pages,
                "attempts": w.attempts,
            }
            for w in result.windows
        ],
    }
    body["content_sha256"] = _content_hash(body)
    return body


def _counts(logs: pd.DataFrame, result: FetchResult) -> dict[str, Any]:
    by_type = {}
    for code, name in TYPE_NAMES.items():
        rows = logs[logs["type"] == code]
        by_type[name] = {"count": len(rows), "quota": int(rows["quota"].sum())}
    by_key = {
        ref: int((logs["key_ref"] == ref).sum()) for ref in result.key_refs
    }  # every configured key, even one with no logs
    return {
        "logs": len(logs),
        "by_type": by_type,
        "by_key": by_key,
        "duplicates": result.duplicates,
        "outside_window": result.outside_window,
        "other_types": result.other_types,
    }


def _content_hash(body: dict[str, Any]) -> str:
    canonical = json.dumps(
        {k: v for k, v in body.items() if k != "content_sha256"},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _origin(url: str) -> str:
    """The gateway's origin for the manifest ("" when the URL is unreadable)."""
    try:
        return origin(url)
    except ValueError:
        return ""


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# reading


def find_snapshot(directory: Path) -> Path:
    """The snapshot directory: `directory` itself, or its `snapshot/` (a report directory)."""
    directory = Path(directory)
    for candidate in (directory, directory / SNAPSHOT_DIR):
        if (candidate / MANIFEST_FILE).is_file():
            return candidate
    raise InputError(
        f"no snapshot here: expected {MANIFEST_FILE} in it or in {SNAPSHOT_DIR}/", file=directory
    )


def read_snapshot(directory: Path) -> FetchResult:
    """Load and verify a snapshot; InputError (naming the file) if anything does not match.

    `directory` is a snapshot directory or a report directory that contains `snapshot/`.
    """
    snap = find_snapshot(directory)
    manifest_path = snap / MANIFEST_FILE
    manifest = _load_manifest(manifest_path)

    def bad(message: str, field: str | None = None, file: Path = manifest_path) -> InputError:
        return InputError(message, file=file, field=field)

    try:
        files = manifest["files"]["logs"]
        name = files["name"]
        expected_sha = files["sha256"]
        period = _period(manifest["period"])
        fetched_at = datetime.fromisoformat(manifest["fetched_at"])
        key_refs = [str(r) for r in manifest["key_refs"]]
        windows = [
            WindowRecord(
                key_ref=str(w["key_ref"]),
                start=int(w["start_ts"]),
                end=int(w["end_ts"]),
                total=int(w["total"]),
                ids=int(w["ids"]),
                pages=int(w["pages"]),
                attempts=int(w["attempts"]),
            )
            for w in manifest["windows"]
        ]
        counts = manifest["counts"]
        duplicates = int(counts["duplicates"])
        outside = int(counts["outside_window"])
        other = int(counts["other_types"])
        base_url = _text(manifest, "base_url", "")
        source = _text(manifest, "source", "token")
        id_scheme = _text(manifest, "id_scheme", "stable")
        if id_scheme not in ID_SCHEMES:
            raise ValueError(f"id_scheme {id_scheme!r} is none of {', '.join(ID_SCHEMES)}")
        stat = manifest.get("gateway_stat_quota")
        stat_quota = None if stat is None else int(stat)
        warnings = manifest.get("warnings", [])
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise TypeError("warnings is not a list of texts")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise bad(f"incomplete or malformed manifest ({type(exc).__name__}: {exc})") from None
    if not isinstance(name, str) or Path(name).name != name or name.startswith("."):
        raise bad("the logs file name must be a plain file name", field="files.logs.name")

    logs_path = snap / name
    try:
        data = logs_path.read_bytes()
    except OSError as exc:
        raise bad(f"cannot read the snapshot's logs: {exc.strerror}", file=logs_path) from None
    if hashlib.sha256(data).hexdigest() != expected_sha:
        raise bad(
            "the logs file does not match the manifest's sha256: it was modified or replaced",
            file=logs_path,
        )
    logs = _read_logs(data, logs_path)

    result = FetchResult(
        period=period,
        logs=logs,
        windows=windows,
        key_refs=key_refs,
        fetched_at=fetched_at,
        base_url=base_url,
        duplicates=duplicates,
        outside_window=outside,
        other_types=other,
        source=source,
        id_scheme=id_scheme,
        gateway_stat_quota=stat_quota,
        warnings=warnings,
    )
    try:
        _verify_counts(result, manifest, bad)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise bad(f"malformed manifest counts ({type(exc).__name__}: {exc})") from None
    return result


def _text(manifest: dict[str, Any], name: str, default: str) -> str:
    """A text field of the manifest; any other type is a malformed manifest, not text."""
    value = manifest.get(name, default)
    if not isinstance(value, str):
        raise TypeError(f"{name} is {type(value).__name__}, not text")
    return value


def _load_manifest(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        manifest = json.loads(text)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=path) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not a JSON manifest ({exc})", file=path) from None
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise InputError("not a reconcile snapshot manifest", file=path, field="kind")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(
            f"snapshot schema_version {version!r} is not supported (this version reads "
            f"{SCHEMA_VERSION})",
            file=path,
            field="schema_version",
        )
    if manifest.get("content_sha256") != _content_hash(manifest):
        raise InputError(
            "the manifest does not match its content_sha256: it was modified after it was written",
            file=path,
            field="content_sha256",
        )
    return manifest


def _period(obj: dict[str, Any]) -> Period:
    try:
        tz = ZoneInfo(str(obj["timezone"]))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {obj['timezone']!r}") from None
    start = datetime.fromisoformat(obj["start"]).astimezone(tz)
    end = datetime.fromisoformat(obj["end"]).astimezone(tz)
    return Period(start=start, end=end, label=str(obj["label"]))


def _read_logs(data: bytes, path: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"not a readable Parquet file ({exc})", file=path) from None
    missing = [c for c in LOG_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"columns missing: {', '.join(missing)}", file=path, field=missing[0])
    df: pd.DataFrame = table.select(LOG_COLUMNS).to_pandas()
    try:
        df = df.astype(LOG_DTYPES)
    except (TypeError, ValueError) as exc:
        raise InputError(f"columns of the wrong type ({exc})", file=path) from None
    if "row_key" in table.column_names:
        df["row_key"] = table.column("row_key").to_pandas().astype("string")
    else:
        df["row_key"] = row_keys(df)
    return df


def _verify_counts(
    result: FetchResult,
    manifest: dict[str, Any],
    bad: Any,
) -> None:
    """The manifest's counts must describe these logs (a consistent, not just intact, file)."""
    logs = result.logs
    counts = manifest["counts"]
    if len(logs) != manifest["files"]["logs"]["rows"] or len(logs) != counts["logs"]:
        raise bad(f"the manifest counts {counts['logs']} logs, the logs file holds {len(logs)}")
    for name, want in counts["by_type"].items():
        code = TYPE_CODES.get(name)
        rows = logs[logs["type"] == code]
        got = {"count": len(rows), "quota": int(rows["quota"].sum())}
        if code is None or got != want:
            raise bad(f"{name} logs: the manifest says {want}, the logs file holds {got}")
    kept_types = set(logs["type"].unique().tolist())
    if not kept_types <= set(TYPE_NAMES):
        raise bad(f"the logs file holds log types {sorted(kept_types - set(TYPE_NAMES))}")
    per_key = {ref: int((logs["key_ref"] == ref).sum()) for ref in result.key_refs}
    if per_key != counts["by_key"] or sum(per_key.values()) != len(logs):
        raise bad(
            f"logs per key: the manifest says {counts['by_key']}, the logs file holds "
            f"{logs['key_ref'].value_counts().to_dict()}"
        )
    if result.id_scheme == "stable" and logs["id"].duplicated().any():
        raise bad("the logs file holds the same log id twice")
    if logs["row_key"].duplicated().any():
        raise bad("the logs file holds the same row key twice")
    period = result.period
    inside = logs["created_at"].between(period.start_ts, period.end_ts - 1)
    if not inside.all():
        raise bad(f"{int((~inside).sum())} logs lie outside the period {period.label}")
    _verify_windows(result, bad)


def _verify_windows(result: FetchResult, bad: Any) -> None:
    """Every log lies in one window of its key, and no window holds more logs than the ids it
    records: a window's `ids` is what the completeness proof rests on, so logs it does not
    account for mean the manifest describes another read than these logs."""
    logs = result.logs
    if not result.windows:
        return
    covered = np.zeros(len(logs), dtype=bool)
    times = logs["created_at"].to_numpy()
    keys = logs["key_ref"].astype(str).to_numpy()
    for w in result.windows:
        here = (keys == w.key_ref) & (times >= w.start) & (times <= w.end)
        held = int(here.sum())
        if held > w.ids:
            raise bad(
                f"window {w.start}..{w.end} of {w.key_ref}: the manifest records {w.ids} ids "
                f"but the logs file holds {held} logs in it"
            )
        covered |= here
    if not covered.all():
        raise bad(f"{int((~covered).sum())} logs lie in no window the manifest records")
