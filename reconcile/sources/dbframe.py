"""Rows from a database cursor as the logs table: LOG_DTYPES columns, then one frame.

Rows arrive as tuples, a chunk at a time; each chunk becomes NumPy arrays (numbers) and Arrow
arrays (text) at once, so Python objects never outlive their chunk. The frame is put together
column by column without copying: text stays in its Arrow chunks, and each number column is
concatenated once while its chunk arrays are dropped, so the numbers are never held twice
over (the DataFrame constructor's default copy would hold them three times at the peak).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from reconcile.core.schema import LOG_DTYPES
from reconcile.errors import GatewayError

#: Where the text columns live. Arrow's default pool (mimalloc) kept 125 MB per million logs
#: of the builders' freed memory in the process for good: peak 793 MB against 669 MB with the
#: system allocator for 1M logs from SQLite (jemalloc: 664 MB, but not in every build).
POOL = pa.system_memory_pool()

#: logs columns read, in LOG_DTYPES terms: (our name, the table's column, default for NULL).
#: `request_id` is absent from older versions' tables and then read as "".
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("id", "id", ""),
    ("created_at", "created_at", ""),
    ("type", "type", ""),
    ("token_name", "token_name", "''"),
    ("username", "username", "''"),
    ("model_name", "model_name", "''"),
    ("group", "group", "''"),
    ("quota", "quota", "0"),
    ("prompt_tokens", "prompt_tokens", "0"),
    ("completion_tokens", "completion_tokens", "0"),
    ("use_time", "use_time", "0"),
    ("is_stream", "is_stream", "FALSE"),
    ("channel", "channel_id", "0"),
    ("request_id", "request_id", "''"),
    ("content", "content", "''"),
    ("other", "other", "''"),
)
OPTIONAL = {"request_id"}


def logs_frame(chunks: list[dict[str, Any]]) -> pd.DataFrame:
    """The chunks (already in order, of kept types only) as one LOG_DTYPES frame; `chunks`
    is emptied on the way."""
    columns: dict[str, Any] = {}
    for name, dtype in LOG_DTYPES.items():
        parts = [chunk.pop(name) for chunk in chunks]
        if dtype == "string":
            arrow = pa.chunked_array(parts, type=pa.large_string())
            columns[name] = pd.Series(pd.arrays.ArrowStringArray(arrow), copy=False)
        else:
            values = np.concatenate(parts) if parts else np.array([], dtype=dtype)
            columns[name] = pd.Series(values, copy=False)
        del parts
    chunks.clear()
    return pd.DataFrame(columns, copy=False)


def chunk_columns(
    rows: list[tuple[Any, ...]], tag: str | dict[Any, str], where: str
) -> tuple[dict[str, Any], Counter[str]]:
    """One fetch of rows as LOG_DTYPES columns (NumPy for numbers, Arrow for text), and how
    many rows each key ref got. `tag` is the one key ref of every row, or maps the last
    column's value (the scope's token_id or token_name) to the row's key ref."""
    columns = list(zip(*rows, strict=True))
    out: dict[str, Any] = {}
    for i, (name, _, _) in enumerate(COLUMNS):
        out[name] = _array(name, columns[i], where)
    if isinstance(tag, str):
        ref = pa.scalar(tag, type=pa.large_string())
        out["key_ref"] = pa.repeat(ref, len(rows), memory_pool=POOL)
        counts = Counter({tag: len(rows)})
    else:
        refs = list(map(tag.__getitem__, columns[len(COLUMNS)]))
        out["key_ref"] = pa.array(refs, type=pa.large_string(), memory_pool=POOL)
        counts = Counter(refs)
    return {name: out[name] for name in LOG_DTYPES}, counts


def _array(name: str, values: tuple[Any, ...], where: str) -> Any:
    """A column as read, fast when the driver gave the expected types (it nearly always does);
    anything else goes through _slow_array, which never truncates a number silently."""
    dtype = LOG_DTYPES[name]
    try:
        if dtype == "string":
            return pa.array(values, type=pa.large_string(), memory_pool=POOL)
        arr = np.array(values)
        if dtype == "bool" and arr.dtype.kind == "b":
            return arr
        if arr.dtype.kind in "iu":
            return arr != 0 if dtype == "bool" else arr.astype(np.int64, copy=False)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        pass
    return _slow_array(name, dtype, values, where)


def _slow_array(name: str, dtype: str, values: tuple[Any, ...], where: str) -> Any:
    """A column holding values of unexpected types (SQLite keeps what it is given)."""
    if dtype == "string":
        return pa.array([_text(v) for v in values], type=pa.large_string(), memory_pool=POOL)
    if dtype == "bool":
        return np.array([str(v).strip().lower() in ("1", "true", "t") for v in values], bool)
    out = []
    for v in values:
        whole = isinstance(v, float) and v.is_integer()
        if isinstance(v, int | bool) or whole or (isinstance(v, str) and _integral(v)):
            out.append(int(v))
        else:
            raise GatewayError(f"log database {where}: a log's `{name}` is not an integer: {v!r}")
    return np.array(out, dtype=np.int64)


def _text(value: Any) -> str:
    """Text as a driver may hand it over: bytes from a binary column (not always UTF-8)."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _integral(text: str) -> bool:
    return text.strip().lstrip("+-").isdigit()
