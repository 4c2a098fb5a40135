"""A snapshot's manifest: what its files hold, in counts a reader checks the files against.

The manifest is the snapshot's table of contents and its proof: the period, where and how the
logs were read (source, id scheme, windows), the counts the logs must add up to, and for each
file its rows, bytes and sha256. `content_sha256` covers all of it, so an edited manifest is
caught before any count is trusted. Version 2 (written now) has one file per local day of the
period, each with that day's counts; version 1 (still read) has one `logs.parquet`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import pyarrow as pa

from reconcile.core.period import Period
from reconcile.core.results import FetchResult, WindowRecord
from reconcile.core.schema import LOG_DTYPES, TYPE_NAMES, empty_logs
from reconcile.core.urls import origin
from reconcile.errors import InputError

if TYPE_CHECKING:
    from reconcile.sources.snapshot_read import SnapshotStore

#: How a snapshot's log ids may be read (sources/engine.py names them when it fetches).
ID_SCHEMES = ("stable", "mod1024", "position")

SCHEMA_VERSION = 2
READ_VERSIONS = (1, 2)
KIND = "reconcile-snapshot"
LOGS_FILE = "logs.parquet"  # version 1's one file
MANIFEST_FILE = "manifest.json"
SNAPSHOT_DIR = "snapshot"  # inside a report directory

#: Columns of every logs file, in order: the logs table plus our own stable key of each row.
COLUMNS = [*LOG_DTYPES, "row_key"]
DTYPES = {**LOG_DTYPES, "row_key": "string"}
_ARROW_TYPES = {"int64": pa.int64(), "string": pa.string(), "bool": pa.bool_()}
ARROW_SCHEMA = pa.schema([pa.field(c, _ARROW_TYPES[t]) for c, t in DTYPES.items()])
#: The files' row order: a day's logs by time, then id, key and content key.
SORT = ["created_at", "id", "key_ref", "row_key"]


@dataclass
class StoredFetch(FetchResult):
    """A FetchResult whose logs stay on disk in `store` (`logs` is empty): what every stage
    but the logs themselves needs, and what tells the report to copy the snapshot's files."""

    store: SnapshotStore = field(kw_only=True, repr=False, compare=False)


def no_logs() -> pd.DataFrame:
    """The logs table of a snapshot holding none (its columns and dtypes)."""
    return _no_logs().copy()


@functools.cache
def _no_logs() -> pd.DataFrame:
    return empty_logs().assign(row_key=pd.Series(dtype="string"))


def day_file(period: Period, start: int) -> str:
    """The name of the file of the day starting at `start` (one of core.logstore.day_edges):
    the local date it starts on."""
    return f"logs-{datetime.fromtimestamp(start, period.tz).date().isoformat()}.parquet"


def counts_of(logs: pd.DataFrame) -> dict[str, Any]:
    """Rows, count and quota by log type, and rows by key ref (every ref the logs hold)."""
    types = logs["type"].to_numpy()
    quota = logs["quota"].to_numpy()
    by_type = {}
    for code, name in TYPE_NAMES.items():
        here = types == code
        by_type[name] = {"count": int(here.sum()), "quota": int(quota[here].sum())}
    keys = logs["key_ref"].value_counts(dropna=False)
    return {
        "logs": len(logs),
        "by_type": by_type,
        "by_key": {str(k): int(n) for k, n in sorted(keys.items())},
    }


def add_counts(parts: Iterable[dict[str, Any]], key_refs: list[str]) -> dict[str, Any]:
    """The counts of the parts together; by_key has exactly `key_refs` (a key with no logs
    counts 0; logs of a ref not among them show as a sum short of `logs`)."""
    total = 0
    by_type = {name: {"count": 0, "quota": 0} for name in TYPE_NAMES.values()}
    by_key = Counter[str]()
    for part in parts:
        total += part["logs"]
        for name, got in part["by_type"].items():
            by_type[name]["count"] += got["count"]
            by_type[name]["quota"] += got["quota"]
        by_key.update(part["by_key"])
    return {
        "logs": total,
        "by_type": by_type,
        "by_key": {ref: by_key[ref] for ref in key_refs},
    }


def manifest(
    meta: FetchResult, files: list[dict[str, Any]], counts: dict[str, Any]
) -> dict[str, Any]:
    """The version 2 manifest of `meta` (its logs are not read) with `files` and `counts`
    (logs, by_type, by_key of the files together)."""
    period = meta.period

    def iso(ts: int) -> str:
        return datetime.fromtimestamp(ts, period.tz).isoformat()

    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "period": {
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "timezone": period.timezone,
            "label": period.label,
        },
        "fetched_at": meta.fetched_at.isoformat(),
        # a database's DSN as shown holds no user or password (sources/dsn.py), and its
        # origin alone would not say which database (nor a SQLite file's which file)
        "base_url": meta.base_url if meta.source == "database" else _origin(meta.base_url),
        "key_refs": list(meta.key_refs),
        "source": meta.source,
        "id_scheme": meta.id_scheme,
        "gateway_stat_quota": meta.gateway_stat_quota,
        "warnings": list(meta.warnings),
        "files": files,
        "counts": {
            **counts,
            "duplicates": meta.duplicates,
            "outside_window": meta.outside_window,
            "other_types": meta.other_types,
        },
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
            for w in meta.windows
        ],
    }
    body["content_sha256"] = content_hash(body)
    return body


def manifest_bytes(body: dict[str, Any]) -> bytes:
    return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def content_hash(body: dict[str, Any]) -> str:
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


def load_manifest(path: Path) -> dict[str, Any]:
    """The manifest at `path`, of a version this reads and matching its content_sha256."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=path) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not a JSON manifest ({exc})", file=path) from None
    if not isinstance(body, dict) or body.get("kind") != KIND:
        raise InputError("not a reconcile snapshot manifest", file=path, field="kind")
    version = body.get("schema_version")
    if version not in READ_VERSIONS or isinstance(version, bool):
        raise InputError(
            f"snapshot schema_version {version!r} is not supported (this version reads "
            f"{' and '.join(map(str, READ_VERSIONS))})",
            file=path,
            field="schema_version",
        )
    if body.get("content_sha256") != content_hash(body):
        raise InputError(
            "the manifest does not match its content_sha256: it was modified after it was written",
            file=path,
            field="content_sha256",
        )
    return body


def meta_of(body: dict[str, Any], path: Path) -> FetchResult:
    """The manifest's FetchResult, its logs empty; InputError naming `path` if malformed."""
    try:
        period = _period(body["period"])
        counts = body["counts"]
        id_scheme = _text(body, "id_scheme", "stable")
        if id_scheme not in ID_SCHEMES:
            raise ValueError(f"id_scheme {id_scheme!r} is none of {', '.join(ID_SCHEMES)}")
        stat = body.get("gateway_stat_quota")
        warnings = body.get("warnings", [])
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise TypeError("warnings is not a list of texts")
        return FetchResult(
            period=period,
            logs=no_logs(),
            windows=[
                WindowRecord(
                    key_ref=str(w["key_ref"]),
                    start=int(w["start_ts"]),
                    end=int(w["end_ts"]),
                    total=int(w["total"]),
                    ids=int(w["ids"]),
                    pages=int(w["pages"]),
                    attempts=int(w["attempts"]),
                )
                for w in body["windows"]
            ],
            key_refs=[str(r) for r in body["key_refs"]],
            fetched_at=datetime.fromisoformat(body["fetched_at"]),
            base_url=_text(body, "base_url", ""),
            duplicates=int(counts["duplicates"]),
            outside_window=int(counts["outside_window"]),
            other_types=int(counts["other_types"]),
            source=_text(body, "source", "token"),
            id_scheme=id_scheme,
            gateway_stat_quota=None if stat is None else int(stat),
            warnings=warnings,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(
            f"incomplete or malformed manifest ({type(exc).__name__}: {exc})", file=path
        ) from None


def _text(body: dict[str, Any], name: str, default: str) -> str:
    """A text field of the manifest; any other type is a malformed manifest, not text."""
    value = body.get(name, default)
    if not isinstance(value, str):
        raise TypeError(f"{name} is {type(value).__name__}, not text")
    return value


def _period(obj: dict[str, Any]) -> Period:
    try:
        tz = ZoneInfo(str(obj["timezone"]))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {obj['timezone']!r}") from None
    start = datetime.fromisoformat(obj["start"]).astimezone(tz)
    end = datetime.fromisoformat(obj["end"]).astimezone(tz)
    return Period(start=start, end=end, label=str(obj["label"]))


def plain_name(name: object) -> bool:
    """A file name a manifest may give: no directory, not hidden."""
    return isinstance(name, str) and bool(name) and Path(name).name == name and name[0] != "."
