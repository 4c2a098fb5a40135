"""Reading the `other` column of consume logs (a JSON string per log) a column at a time.

A million `json.loads` calls take ~6 s. pyarrow's JSON reader parses the same text straight
from the string column's buffer in about a second, if it is asked for few keys (its cost grows
with every declared key). So the fast pass reads only the keys every log carries (COMMON_*);
the logs of other billing paths are found by a regex over the text of the few logs where
it matters (`mentions`) and read whole with `json.loads` by `reconcile.pricing.rowwise`. A
chunk the fast reader refuses (bad JSON, a value of an unexpected type) is re-read row by
row here: an odd log costs time, never correctness.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

#: Keys present on (nearly) every consume log, read by the fast pass.
COMMON_FLOATS: Final = (
    "model_ratio",
    "group_ratio",
    "completion_ratio",
    "cache_ratio",
    "cache_creation_ratio",
    "model_price",
    "cache_tokens",
    "cache_creation_tokens",
)
COMMON_STRINGS: Final = ("usage_semantic",)
COMMON_BOOLS: Final = ("claude",)
#: Keys only some logs carry; read row by row where they matter.
RARE_FLOATS: Final = (
    "cache_creation_ratio_5m",
    "cache_creation_ratio_1h",
    "image_ratio",
    "cache_creation_tokens_5m",
    "cache_creation_tokens_1h",
    "image_output",
    "web_search_call_count",
    "file_search_call_count",
    "audio_input_token_count",
    "quota_delta",
    "actual_quota",
    "pre_consumed_quota",
    "user_group_ratio",
)
RARE_BOOLS: Final = (
    "image",
    "audio",
    "ws",
    "web_search",
    "file_search",
    "image_generation_call",
    "audio_input_seperate_price",
    "video_task",
)
RARE_STRINGS: Final = ("billing_mode", "task_id")
FLOAT_KEYS: Final = COMMON_FLOATS + RARE_FLOATS
BOOL_KEYS: Final = COMMON_BOOLS + RARE_BOOLS
STRING_KEYS: Final = COMMON_STRINGS + RARE_STRINGS
TOKEN_KEYS: Final = (
    "cache_tokens",
    "cache_creation_tokens",
    "cache_creation_tokens_5m",
    "cache_creation_tokens_1h",
    "image_output",
)
#: A row whose text matches this may carry a rare key (over-matching only costs a parse).
RARE_PATTERN: Final = (
    r'"(?:task_id|is_task|tool_surcharges|web_search|file_search|image|audio|ws"|billing_mode|'
    r"matched_tier|quota_delta|actual_quota|pre_consumed|video_task|cache_creation_tokens_|"
    r"cache_creation_ratio_|request_conversion|usage_billing_path|text_input|text_output)"
)

EMPTY: Final = 0  # no `other` at all (older servers): nothing extra to read
PARSED: Final = 1
UNREADABLE: Final = 2

_CHUNK: Final = 1 << 16
_WORKERS: Final = 2
#: Rare float keys the fast pass may be asked for too (`parse_other(extra=...)`).
FAST_EXTRA: Final = ("user_group_ratio",)
_SCHEMA: Final = pa.schema(
    [(k, pa.float64()) for k in COMMON_FLOATS]
    + [(k, pa.string()) for k in COMMON_STRINGS]
    + [(k, pa.bool_()) for k in COMMON_BOOLS]
)
_SCHEMA_EXTRA: Final = pa.schema([*_SCHEMA, *((k, pa.float64()) for k in FAST_EXTRA)])
_OPEN: Final = ord("{")
_CLOSE: Final = ord("}")


@dataclass
class OtherFields:
    """The keys of `other` that pricing reads, one numpy array per key, aligned with the logs.

    Rows the fast reader parsed hold the common keys; rows read row by row hold every key."""

    floats: dict[str, npt.NDArray[np.float64]]
    bools: dict[str, npt.NDArray[np.bool_]]
    strings: dict[str, npt.NDArray[np.object_]]
    state: npt.NDArray[np.int8]  # EMPTY | PARSED | UNREADABLE
    problems: dict[int, str] = field(default_factory=dict)  # row -> why it is unreadable

    @classmethod
    def blank(cls, n: int) -> OtherFields:
        return cls(
            floats={k: np.full(n, np.nan) for k in FLOAT_KEYS},
            bools={k: np.zeros(n, dtype=bool) for k in BOOL_KEYS},
            strings={k: np.full(n, None, dtype=object) for k in STRING_KEYS},
            state=np.zeros(n, dtype=np.int8),
        )

    def unreadable(self, row: int, why: str) -> None:
        self.state[row] = UNREADABLE
        self.problems.setdefault(row, why)


def parse_other(other: pd.Series, extra: bool = False) -> OtherFields:
    """Read the common keys of every log's `other`; empty stays EMPTY, broken is UNREADABLE.

    `extra`: also read FAST_EXTRA (user_group_ratio, when the rules have group pairs)."""
    n = len(other)
    out = OtherFields.blank(n)
    if n == 0:
        return out
    arr = _large_strings(other)
    offsets, data = _buffers(arr)
    valid = np.ones(n, dtype=bool)
    if arr.null_count:
        valid = ~arr.is_null().to_numpy(zero_copy_only=False)
    lengths = np.diff(offsets)
    if len(data):
        first = data[np.minimum(offsets[:-1], len(data) - 1)]
        last = data[np.maximum(offsets[1:] - 1, 0)]
    else:
        first = last = np.zeros(n, dtype=np.uint8)
    fast = valid & (lengths >= 2) & (first == _OPEN) & (last == _CLOSE)
    slow = valid & (lengths > 0) & ~fast
    chunks = [(a, min(n, a + _CHUNK)) for a in range(0, n, _CHUNK)]
    # pyarrow releases the GIL while parsing: two chunks at a time use both cores
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        schema = _SCHEMA_EXTRA if extra else _SCHEMA
        tables = list(pool.map(lambda ab: _parse_chunk(arr, ab[0], ab[1], fast, schema), chunks))
    for (a, b), table in zip(chunks, tables, strict=True):
        rows = np.flatnonzero(fast[a:b]) + a
        if not len(rows):
            continue
        if table is None:
            slow[rows] = True
        else:
            _store(table, rows, out)
    rows = np.flatnonzero(slow)
    if len(rows):
        texts = arr.take(pa.array(rows)).to_pylist()
        for i, text in zip(rows.tolist(), texts, strict=True):
            _slow_row(i, text, out)
    return out


def mentions(
    column: pd.Series, rows: npt.NDArray[np.intp], pattern: str | None
) -> npt.NDArray[np.intp]:
    """The rows among `rows` whose text matches `pattern` (None: RARE_PATTERN)."""
    if not len(rows):
        return rows
    texts = _large_strings(column)
    if len(rows) != len(texts):
        texts = texts.take(pa.array(rows))
    hit = pc.match_substring_regex(texts, pattern or RARE_PATTERN).fill_null(False)
    found: npt.NDArray[np.intp] = rows[hit.to_numpy(zero_copy_only=False)]
    return found


def _large_strings(other: pd.Series) -> pa.LargeStringArray:
    arr: Any = pa.array(other, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_null(arr.type):
        arr = pa.nulls(len(arr), type=pa.large_string())
    if not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    assert isinstance(arr, pa.LargeStringArray)
    return arr


def _buffers(arr: pa.LargeStringArray) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.empty(0, np.uint8)
    return offsets, data


def _parse_chunk(
    arr: pa.LargeStringArray, a: int, b: int, fast: npt.NDArray[np.bool_], schema: pa.Schema
) -> pa.Table | None:
    """Parse the fast rows of [a, b) with pyarrow; None when they must go row by row.

    The rows' texts lie back to back in the column's buffer; the reader takes them as a
    stream of objects (no separator needed), and the row count proves the alignment.
    """
    chunk = arr.slice(a, b - a)
    wanted = int(fast[a:b].sum())
    if not wanted:
        return None
    if wanted != b - a:
        chunk = chunk.filter(pa.array(fast[a:b]))
    offsets, _ = _buffers(chunk)
    data = chunk.buffers()[2]
    if data is None:
        return None
    body = data.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    try:
        table = pj.read_json(
            pa.BufferReader(body),
            read_options=pj.ReadOptions(use_threads=False, block_size=1 << 22),
            parse_options=pj.ParseOptions(
                explicit_schema=schema,
                unexpected_field_behavior="ignore",
                newlines_in_values=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if table.num_rows != wanted:
        return None  # some row held two objects (or none): alignment is lost
    return table


def _store(table: pa.Table, rows: npt.NDArray[np.intp], out: OtherFields) -> None:
    for k in (*COMMON_FLOATS, *FAST_EXTRA):
        if k not in table.column_names:
            continue
        col = table.column(k)
        if col.null_count < len(col):
            out.floats[k][rows] = col.to_numpy(zero_copy_only=False).astype(np.float64)
    for k in COMMON_BOOLS:
        col = table.column(k)
        if col.null_count < len(col):
            out.bools[k][rows] = col.fill_null(False).to_numpy(zero_copy_only=False)
    for k in COMMON_STRINGS:
        col = table.column(k)
        if col.null_count < len(col):
            out.strings[k][rows] = col.to_numpy(zero_copy_only=False)
    out.state[rows] = PARSED


def _slow_row(i: int, text: str | None, out: OtherFields) -> None:
    """Read one row with json.loads, every key.

    A value of the wrong type in a key that re-pricing needs (token counts, the `claude`
    marker of usage semantics) makes the row UNREADABLE; elsewhere it counts as absent (a
    ratio that cannot be compared, a flag that cannot be read), as the fast pass, which never
    reads those keys, would also leave it.
    """
    if text is None or not text.strip():
        return
    try:
        obj = json.loads(text)
    except ValueError:
        out.unreadable(i, "`other` is not valid JSON")
        return
    if not isinstance(obj, dict):
        out.unreadable(i, "`other` is not a JSON object")
        return
    out.state[i] = PARSED
    for k in FLOAT_KEYS:
        v = obj.get(k)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            if k in TOKEN_KEYS:
                out.unreadable(i, f"`other` has a non-numeric {k}: {v!r}"[:120])
            continue
        out.floats[k][i] = float(v)
    for k in BOOL_KEYS:
        v = obj.get(k)
        if isinstance(v, bool):
            out.bools[k][i] = v
        elif v is not None and k == "claude":
            out.unreadable(i, f"`other` has a non-boolean {k}: {v!r}"[:120])
    for k in STRING_KEYS:
        v = obj.get(k)
        if v is not None:
            out.strings[k][i] = str(v)
