"""Reading the `other` column of consume logs (a JSON string per log) a column at a time.

A million `json.loads` calls take ~6 s. pyarrow's JSON reader parses the same text straight
from the string column's buffer in about a second, if it is asked for few keys (its cost grows
with every declared key, and a float costs more than an integer). So one pass reads only what
the text formula needs of every log (COMMON_*); the ratios the gateway logged are read for the
few logs whose finding compares them (`read_floats`); the logs of other billing paths are
found by a regex over the column's bytes (`mentions`) and read by their tiers (`read_table`)
or whole with `json.loads` by `reconcile.pricing.rowwise`. A chunk the fast reader refuses
(bad JSON, a value of an unexpected type) is re-read row by row here: an odd log costs time,
never correctness.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

#: Keys every consume log's `other` is read for in one pass: what the text formula needs.
COMMON_FLOATS: Final = ("cache_tokens", "cache_creation_tokens")
COMMON_STRINGS: Final = ("usage_semantic",)
#: usage_semantic as a code (`OtherFields.semantic`): 0 when not stated, 1 + its index here
#: for the words the text tier knows, OTHER_SEMANTIC for any other value.
SEMANTICS: Final = ("anthropic", "openai")
OTHER_SEMANTIC: Final = len(SEMANTICS) + 1
COMMON_BOOLS: Final = ("claude",)
#: The ratios and price the gateway logged: read only for the logs whose finding compares
#: them, or whose charge they group (`read_floats`).
RATIO_FLOATS: Final = (
    "model_ratio",
    "group_ratio",
    "completion_ratio",
    "cache_ratio",
    "cache_creation_ratio",
    "model_price",
)
#: Token counts of rarer logs (those go to the per-path tiers, which read `other` whole).
TOKEN_KEYS: Final = (
    *COMMON_FLOATS,
    "cache_creation_tokens_5m",
    "cache_creation_tokens_1h",
    "image_output",
)
FLOAT_KEYS: Final = (*TOKEN_KEYS, *RATIO_FLOATS, "user_group_ratio")

EMPTY: Final = 0  # no `other` at all (older servers): nothing extra to read
PARSED: Final = 1
UNREADABLE: Final = 2

_CHUNK: Final = 1 << 16
_SMALL_CHUNK: Final = 1 << 12
_BLOCK: Final = 1 << 25  # above a chunk's bytes: one block, no search for object boundaries
_WORKERS: Final = 2
#: Rare float keys the fast pass may be asked for too (`parse_other(extra=...)`).
FAST_EXTRA: Final = ("user_group_ratio",)
#: Token counts are whole: read as int64, which parses about a third faster than float64; a
#: chunk holding a count written otherwise (12.0, 1e3) is read again with float64.
_SCHEMA: Final = pa.schema(
    [(k, pa.int64()) for k in COMMON_FLOATS]
    + [(k, pa.string()) for k in COMMON_STRINGS]
    + [(k, pa.bool_()) for k in COMMON_BOOLS]
)
_SCHEMA_EXTRA: Final = pa.schema([*_SCHEMA, *((k, pa.float64()) for k in FAST_EXTRA)])
_RATIOS: Final = pa.schema([(k, pa.float64()) for k in RATIO_FLOATS])
_OPEN: Final = ord("{")
_CLOSE: Final = ord("}")


@dataclass
class OtherFields:
    """The keys of `other` that pricing reads, one numpy array per key, aligned with the logs.

    Rows the fast reader parsed hold the common keys (and the ratios once `read_floats`
    read them); rows read row by row hold every key."""

    floats: dict[str, npt.NDArray[np.float64]]
    bools: dict[str, npt.NDArray[np.bool_]]
    semantic: npt.NDArray[np.int8]  # usage_semantic, coded (SEMANTICS)
    state: npt.NDArray[np.int8]  # EMPTY | PARSED | UNREADABLE
    #: Rows read whole with json.loads (every key); the others hold the common keys only.
    whole: npt.NDArray[np.bool_]
    problems: dict[int, str] = field(default_factory=dict)  # row -> why it is unreadable

    @classmethod
    def blank(cls, n: int) -> OtherFields:
        return cls(
            floats={k: np.full(n, np.nan) for k in FLOAT_KEYS},
            bools={k: np.zeros(n, dtype=bool) for k in COMMON_BOOLS},
            semantic=np.zeros(n, dtype=np.int8),
            state=np.zeros(n, dtype=np.int8),
            whole=np.zeros(n, dtype=bool),
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
    refused = _read_fast(arr, np.flatnonzero(fast), _SCHEMA_EXTRA if extra else _SCHEMA, out)
    rows = np.union1d(np.flatnonzero(slow), refused)
    if len(rows):
        texts = arr.take(pa.array(rows)).to_pylist()
        for i, text in zip(rows.tolist(), texts, strict=True):
            _slow_row(i, text, out)
    return out


def read_floats(other: pd.Series, rows: npt.NDArray[np.intp], out: OtherFields) -> None:
    """Also read the logged ratios and price (RATIO_FLOATS) of `rows` into `out`."""
    rows = rows[(out.state[rows] == PARSED) & ~out.whole[rows]]
    if not len(rows):
        return
    arr = _large_strings(other).take(pa.array(rows))
    refused = _read_fast(arr, np.arange(len(rows)), _RATIOS, out, rows)
    if len(refused):
        texts = arr.take(pa.array(refused)).to_pylist()
        for i, text in zip(rows[refused].tolist(), texts, strict=True):
            _slow_row(i, text, out)


def read_table(
    other: pd.Series, rows: npt.NDArray[np.intp], schema: pa.Schema
) -> tuple[pa.Table | None, npt.NDArray[np.intp]]:
    """`schema`'s keys of the objects `other[rows]` as a table, and the positions in `rows`
    of its rows: a small chunk the reader refuses (a value of another type) is left out."""
    tables, read = [], []
    if len(rows):
        arr = _large_strings(other).take(pa.array(rows))
        for a in range(0, len(rows), _SMALL_CHUNK):
            part = np.arange(a, min(len(rows), a + _SMALL_CHUNK))
            table = _parse_chunk(arr, part, schema)
            if table is not None:
                tables.append(table)
                read.append(part)
    if not tables:
        return None, rows[:0]
    return pa.concat_tables(tables), np.concatenate(read).astype(np.intp)


def _read_fast(
    arr: pa.LargeStringArray,
    rows: npt.NDArray[np.intp],
    schema: pa.Schema,
    out: OtherFields,
    at: npt.NDArray[np.intp] | None = None,
) -> npt.NDArray[np.intp]:
    """Read `schema`'s keys of `arr[rows]` (objects) into `out` (at `at[rows]`, default
    `rows`) with pyarrow, chunk by chunk on both cores; return the rows it refused."""
    chunks = [rows[a : a + _CHUNK] for a in range(0, len(rows), _CHUNK)]
    loose = pa.schema([(f.name, pa.float64() if f.type == pa.int64() else f.type) for f in schema])

    def read(part: npt.NDArray[np.intp]) -> bool:
        table = _parse_chunk(arr, part, schema)
        if table is None and loose != schema:
            table = _parse_chunk(arr, part, loose)
        if table is not None:  # chunks are disjoint rows: each stores its own
            _store(table, part if at is None else at[part], out)
        return table is not None

    # pyarrow releases the GIL while parsing: two chunks at a time use both cores, and one
    # chunk's values are stored while the next is parsed
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        read_ok = list(pool.map(read, chunks))
    refused = [part for part, ok in zip(chunks, read_ok, strict=True) if not ok]
    return np.concatenate(refused) if refused else rows[:0]


def key_pattern(keys: Iterable[str]) -> str:
    """A regex for `other` text that has one of `keys` as a key (or as a string followed by
    a colon inside another value: over-matching costs only a closer look)."""
    return '"(?:' + "|".join(re.escape(k) for k in keys) + r')"\s*:'


def mentions(column: pd.Series, rows: npt.NDArray[np.intp], pattern: str) -> npt.NDArray[np.intp]:
    """The rows among `rows` (ascending) whose text matches `pattern`. A few rows are copied
    out first; many are matched in place (`matches`)."""
    if not len(rows):
        return rows
    texts = _large_strings(column)
    if len(rows) * 4 < len(texts):
        hit = pc.match_substring_regex(texts.take(pa.array(rows)), pattern)
        few: npt.NDArray[np.intp] = rows[hit.fill_null(False).to_numpy(zero_copy_only=False)]
        return few
    found: npt.NDArray[np.intp] = rows[matches(column, pattern)[rows]]
    return found


def matches(column: pd.Series, pattern: str) -> npt.NDArray[np.bool_]:
    """Whether each text of `column` matches `pattern` (null: no), matched in place in two
    halves on both cores (Arrow releases the GIL)."""
    texts = _large_strings(column)
    half = len(texts) // 2
    if pattern.isascii():  # the same bytes, matched without decoding UTF-8: a fifth faster
        texts = texts.view(pa.large_binary())
    halves = [texts.slice(0, half), texts.slice(half)]
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        hits = list(
            pool.map(lambda t: pc.match_substring_regex(t, pattern).fill_null(False), halves)
        )
    every: npt.NDArray[np.bool_] = np.concatenate(
        [h.to_numpy(zero_copy_only=False) for h in hits]
    ).astype(bool)
    return every


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
    arr: pa.LargeStringArray, rows: npt.NDArray[np.intp], schema: pa.Schema
) -> pa.Table | None:
    """Parse the objects `arr[rows]` (ascending) with pyarrow; None when they must go row by
    row. The rows' texts lie back to back in the column's buffer; the reader takes them as a
    stream of objects (no separator needed), and the row count proves the alignment.
    """
    if not len(rows):
        return None
    a, b = int(rows[0]), int(rows[-1]) + 1
    chunk = arr.slice(a, b - a)
    if len(rows) != b - a:
        keep = np.zeros(b - a, dtype=bool)
        keep[rows - a] = True
        chunk = chunk.filter(pa.array(keep))
    offsets, _ = _buffers(chunk)
    data = chunk.buffers()[2]
    if data is None:
        return None
    body = data.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    try:
        table = pj.read_json(
            pa.BufferReader(body),
            read_options=pj.ReadOptions(use_threads=False, block_size=_BLOCK),
            parse_options=pj.ParseOptions(
                explicit_schema=schema,
                unexpected_field_behavior="ignore",
                newlines_in_values=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if table.num_rows != len(rows):
        return None  # some row held two objects (or none): alignment is lost
    return table


def _store(table: pa.Table, rows: npt.NDArray[np.intp], out: OtherFields) -> None:
    for k in table.column_names:
        col = table.column(k)
        if col.null_count == len(col):
            continue
        if k in out.floats:
            out.floats[k][rows] = col.to_numpy(zero_copy_only=False).astype(np.float64)
        elif k in out.bools:
            out.bools[k][rows] = col.fill_null(False).to_numpy(zero_copy_only=False)
        else:  # usage_semantic, coded
            code = np.where(col.is_valid().to_numpy(zero_copy_only=False), OTHER_SEMANTIC, 0)
            for j, word in enumerate(SEMANTICS):
                code[pc.equal(col, word).fill_null(False).to_numpy(zero_copy_only=False)] = j + 1
            out.semantic[rows] = code
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
    out.whole[i] = True
    for k in FLOAT_KEYS:
        v = obj.get(k)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            if k in TOKEN_KEYS:
                out.unreadable(i, f"`other` has a non-numeric {k}: {v!r}"[:120])
            continue
        out.floats[k][i] = float(v)
    for k in COMMON_BOOLS:
        v = obj.get(k)
        if isinstance(v, bool):
            out.bools[k][i] = v
        elif v is not None and k == "claude":
            out.unreadable(i, f"`other` has a non-boolean {k}: {v!r}"[:120])
    said = obj.get("usage_semantic")
    if said is not None:
        word = str(said)
        out.semantic[i] = SEMANTICS.index(word) + 1 if word in SEMANTICS else OTHER_SEMANTIC
