"""An in-memory log table shaped like new-api's `logs`, indexed for time-range paging.

Rows of one key are kept sorted by (created_at, id) so a time range is two bisections, and a
page is a slice: serving a page costs O(log n + page_size) however many logs the key holds.
"""

from __future__ import annotations

import bisect
import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconcile.errors import InputError

#: Defaults for the fields of a log row that `insert` does not get.
ROW_DEFAULTS: dict[str, object] = {
    "type": 2,
    "username": "demo",
    "token_name": "default",
    "model_name": "gpt-4o-mini",
    "quota": 0,
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "use_time": 1,
    "is_stream": False,
    "channel": 1,
    "group": "default",
    "content": "",
    "request_id": "",
    "other": "",
}


@dataclass
class _KeyLogs:
    """One key's rows, sorted by (created_at, id), with the sort keys in flat lists for bisect."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    dirty: bool = False  # rows appended out of order; sort before the next query
    monotonic: bool = True  # ids ascend with (created_at, id): a reversed slice is id DESC

    def append(self, row: dict[str, Any]) -> None:
        c, i = int(row["created_at"]), int(row["id"])
        if self.rows and (c, i) < (self.created[-1], self.ids[-1]):
            self.dirty = True
        self.rows.append(row)
        self.created.append(c)
        self.ids.append(i)

    def insort(self, row: dict[str, Any]) -> None:
        """Insert keeping order: O(n) memmove, cheap enough for rows added while serving."""
        self.settle()
        c, i = int(row["created_at"]), int(row["id"])
        pos = bisect.bisect_right(self.created, c)
        while pos > 0 and self.created[pos - 1] == c and self.ids[pos - 1] > i:
            pos -= 1
        self.rows.insert(pos, row)
        self.created.insert(pos, c)
        self.ids.insert(pos, i)
        if self.monotonic:
            before_ok = pos == 0 or self.ids[pos - 1] < i
            after_ok = pos == len(self.ids) - 1 or i < self.ids[pos + 1]
            self.monotonic = before_ok and after_ok

    def settle(self) -> None:
        if not self.dirty:
            return
        self.rows.sort(key=lambda r: (int(r["created_at"]), int(r["id"])))
        self.created = [int(r["created_at"]) for r in self.rows]
        self.ids = [int(r["id"]) for r in self.rows]
        self.monotonic = all(a < b for a, b in zip(self.ids, self.ids[1:], strict=False))
        self.dirty = False

    def remove(self, log_id: int) -> bool:
        self.settle()
        try:
            pos = self.ids.index(log_id)
        except ValueError:
            return False
        del self.rows[pos], self.created[pos], self.ids[pos]
        self.monotonic = all(a < b for a, b in zip(self.ids, self.ids[1:], strict=False))
        return True


def like_matcher(pattern: str) -> re.Pattern[str]:
    """SQL LIKE as new-api uses it for `model_name`: `%`/`_` wildcards, else a substring match."""
    if "%" not in pattern and "_" not in pattern:
        pattern = f"%{pattern}%"
    parts = []
    for ch in pattern:
        if ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


class LogStore:
    """Logs of many keys; ids are global across keys, like new-api's auto-increment `logs.id`.

    Thread-safe: the server's handler threads query while faults insert rows.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._keys: dict[str, _KeyLogs] = {}
        self._next_id = 1

    # -- writing ---------------------------------------------------------------------------

    def register(self, key: str) -> None:
        """Make `key` a valid token even if it has no logs (an empty period is not a bad key)."""
        with self._lock:
            self._keys.setdefault(key, _KeyLogs())

    def add(self, key: str, item: dict[str, object]) -> None:
        """Add one log item (a gateway item dict including `id` and `created_at`)."""
        if "id" not in item or "created_at" not in item:
            raise ValueError("a log item needs `id` and `created_at`")
        row: dict[str, Any] = dict(item)
        log_id = row["id"] = int(row["id"])
        row["created_at"] = int(row["created_at"])
        with self._lock:
            self._keys.setdefault(key, _KeyLogs()).append(row)
            self._next_id = max(self._next_id, log_id + 1)

    def add_many(self, key: str, items: Iterable[dict[str, object]]) -> None:
        for item in items:
            self.add(key, item)

    def insert(self, key: str, **fields: object) -> int:
        """A new row with the next global id (like a request logged now); returns its id."""
        with self._lock:
            log_id = self._next_id
            self._next_id += 1
            row: dict[str, Any] = dict(ROW_DEFAULTS)
            row.update(fields)
            row["id"] = log_id
            row["created_at"] = int(fields.get("created_at", time.time()))  # type: ignore[call-overload]
            self._keys.setdefault(key, _KeyLogs()).insort(row)
            return log_id

    def remove(self, key: str, log_id: int) -> bool:
        """Delete one row (as an operator's history cleanup would); True if it existed."""
        with self._lock:
            logs = self._keys.get(key)
            return logs.remove(log_id) if logs else False

    @classmethod
    def from_jsonl(cls, path: str | Path) -> LogStore:
        """Load `{"key": "sk-...", ...item fields}` lines (blank lines ignored)."""
        store = cls()
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"not JSON: {exc.msg}", file=path, line=lineno) from None
                if not isinstance(obj, dict) or not isinstance(obj.get("key"), str):
                    raise InputError(
                        "expected an object with a string `key`", file=path, line=lineno
                    )
                key = obj.pop("key")
                try:
                    store.add(key, obj)
                except (ValueError, TypeError) as exc:
                    raise InputError(str(exc), file=path, line=lineno) from None
        return store

    # -- reading ---------------------------------------------------------------------------

    def has_key(self, key: str) -> bool:
        with self._lock:
            return key in self._keys

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._keys)

    def count(self, key: str) -> int:
        with self._lock:
            logs = self._keys.get(key)
            return len(logs.rows) if logs else 0

    def __len__(self) -> int:
        with self._lock:
            return sum(len(k.rows) for k in self._keys.values())

    def ids(self, key: str, start: int, end: int) -> set[int]:
        """Ids of `key` with start <= created_at <= end: what a complete fetch must return."""
        with self._lock:
            logs = self._keys.get(key)
            if logs is None:
                return set()
            logs.settle()
            lo = bisect.bisect_left(logs.created, start)
            hi = bisect.bisect_right(logs.created, end)
            return set(logs.ids[lo:hi])

    def between(self, keys: Iterable[str], start: int, end: int) -> list[dict[str, Any]]:
        """Rows of `keys` with start <= created_at <= end, newest first (id DESC)."""
        out: list[dict[str, Any]] = []
        with self._lock:
            for key in keys:
                logs = self._keys.get(key)
                if logs is None:
                    continue
                logs.settle()
                lo = bisect.bisect_left(logs.created, start)
                hi = bisect.bisect_right(logs.created, end)
                out.extend(logs.rows[lo:hi])
        out.sort(key=lambda r: int(r["id"]), reverse=True)
        return out

    def query(
        self,
        key: str,
        start: int,
        end: int,
        *,
        offset: int,
        limit: int,
        log_type: int = 0,
        model_name: str = "",
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, page) for `start <= created_at <= end`, newest first (id DESC).

        Rows are never mutated after insertion, so the returned dicts can be serialised
        outside the lock.
        """
        with self._lock:
            logs = self._keys.get(key)
            if logs is None:
                return 0, []
            logs.settle()
            lo = bisect.bisect_left(logs.created, start)
            hi = bisect.bisect_right(logs.created, end)
            if hi <= lo:
                return 0, []
            if not log_type and not model_name:
                total = hi - lo
                if logs.monotonic:
                    top = hi - 1 - offset
                    bottom = max(lo, top - limit + 1)
                    if top < lo:
                        return total, []
                    return total, logs.rows[bottom : top + 1][::-1]
                idx = list(range(lo, hi))
            else:
                match = like_matcher(model_name) if model_name else None
                idx = [
                    i
                    for i in range(lo, hi)
                    if (not log_type or logs.rows[i].get("type") == log_type)
                    and (match is None or match.search(str(logs.rows[i].get("model_name", ""))))
                ]
                total = len(idx)
            if logs.monotonic:
                idx.reverse()
            else:
                idx.sort(key=lambda i: logs.ids[i], reverse=True)
            return total, [logs.rows[i] for i in idx[offset : offset + limit]]
