"""Builders shared by the rules and pricing tests: consume logs as the fetch stage hands them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from reconcile.core.schema import CONSUME, LOG_DTYPES
from reconcile.demo.server import GatewayServer
from reconcile.demo.store import LogStore
from reconcile.pricing.rules import Rules, parse_rules

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: 2026-10-10 12:00 in Asia/Shanghai.
NOON = int(datetime(2026, 10, 10, 12, tzinfo=SHANGHAI).timestamp())


def at(text: str, tz: ZoneInfo = SHANGHAI) -> int:
    """Unix seconds of a local time like '2026-10-15 00:00:00' in `tz`."""
    return int(datetime.fromisoformat(text).replace(tzinfo=tz).timestamp())


def other(**fields: Any) -> str:
    """An `other` JSON string as new-api writes it (ratio-priced defaults)."""
    base: dict[str, Any] = {
        "user_group_ratio": -1,
        "frt": 812,
        "request_path": "/v1/chat/completions",
    }
    base.update(fields)
    return json.dumps(base)


def log(**fields: Any) -> dict[str, Any]:
    """One consume log with sensible defaults; override any column."""
    row: dict[str, Any] = {
        "id": None,
        "created_at": NOON,
        "type": CONSUME,
        "key_ref": "key-test",
        "token_name": "prod",
        "username": "alice",
        "model_name": "gpt-4o",
        "group": "default",
        "quota": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "use_time": 2,
        "is_stream": False,
        "channel": 1,
        "request_id": "req-1",
        "content": "",
        "other": "",
    }
    row.update(fields)
    return row


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Logs with schema.LOG_DTYPES; ids default to 1, 2, 3... when not given."""
    fixed = [{**r, "id": i + 1 if r.get("id") is None else r["id"]} for i, r in enumerate(rows)]
    df = pd.DataFrame(fixed, columns=list(LOG_DTYPES))
    return df.astype(LOG_DTYPES)


def rules(text: str) -> Rules:
    return parse_rules(text, "test-rules.toml")


GPT4O = """
[groups]
default = 1
vip = 0.8
[[model]]
match = "gpt-4o"
model_ratio = 1.25
completion_ratio = 4
cache_ratio = 0.5
cache_creation_ratio = 1.25
[[model]]
match = "claude-*"
model_ratio = 1.5
completion_ratio = 5
cache_ratio = 0.1
cache_creation_ratio = 1.25
[[model]]
match = "dall-e-3"
model_price = 0.04
"""


def write_jsonl(path: Path, rows: list[dict[str, Any]], key: str) -> Path:
    """Logs as the built-in gateway's store reads them: one JSON object per line with `key`."""
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({"key": key, **row}, ensure_ascii=False) + "\n")
    return path


@contextmanager
def serving(logs: Path, pricing: dict[str, Any] | None = None) -> Iterator[str]:
    """The built-in gateway on 127.0.0.1 serving these logs (and this /api/pricing)."""
    with GatewayServer(LogStore.from_jsonl(logs), pricing=pricing) as server:
        yield server.url
