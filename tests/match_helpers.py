"""Builders shared by the ledger, invoice and matching tests: logs frames and fixture files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from reconcile.core.period import Period, parse_period
from reconcile.core.schema import LOG_DTYPES
from reconcile.pricing.rules import Rules, load_rules

ROOT = Path(__file__).resolve().parents[1]
LEDGERS = ROOT / "fixtures" / "ledgers"
INVOICES = ROOT / "fixtures" / "invoices"
TZ = "Asia/Shanghai"


def period() -> Period:
    return parse_period("2026-10", None, None, TZ)


def fixture_rules() -> Rules:
    return load_rules(LEDGERS / "rules.toml")


def ts(text: str) -> int:
    """Unix seconds of an ISO time; naive means Asia/Shanghai like the fixtures."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=period().tz)
    return int(moment.timestamp())


def make_logs(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A logs frame (schema.LOG_DTYPES) from partial rows; `created_at` may be ISO text."""
    defaults: dict[str, Any] = {
        "created_at": "2026-10-05 10:00:00",
        "type": 2,
        "key_ref": "key-test",
        "username": "u",
        "group": "default",
        "quota": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "use_time": 0,
        "is_stream": False,
        "channel": 1,
    }
    filled = []
    for row in rows:
        rec = {**defaults, **row}
        if isinstance(rec["created_at"], str):
            rec["created_at"] = ts(rec["created_at"])
        filled.append(rec)
    frame = pd.DataFrame(filled, columns=list(LOG_DTYPES))
    for col, dtype in LOG_DTYPES.items():
        if dtype == "string":
            frame[col] = frame[col].astype("string")
        else:
            frame[col] = frame[col].fillna(0).astype(dtype)
    return frame


def fixture_logs() -> pd.DataFrame:
    """The eight logs every fixture in fixtures/ledgers/README.md is matched against."""
    raw = pd.read_csv(LEDGERS / "gateway-logs.csv", dtype=str, keep_default_na=False)
    rows = [
        {
            "id": int(r.id),
            "created_at": r.created_at,
            "type": int(r.type),
            "token_name": r.token_name or None,
            "model_name": r.model_name or None,
            "group": r.group,
            "quota": int(r.quota),
            "request_id": r.request_id,
        }
        for r in raw.itertuples()
    ]
    return make_logs(rows)


def write(directory: Path, name: str, content: str | bytes) -> Path:
    """Write a test CSV byte for byte (str is UTF-8 with the newlines as given)."""
    path = directory / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path
