"""Reading CSV files as Excel and finance systems write them, without losing a record.

A file is read in three vectorised passes: decode (books.decode), find the header (a `sep=`
hint line and title lines above it are skipped and counted), and split the body into records
of string cells, each numbered by its physical line (books.records). Nothing is dropped
silently: empty records are counted, rows too wide and lines with an unclosed quote are kept
for the loader to report with their line numbers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reconcile.books.decode import decode
from reconcile.books.records import IntArray, find_records, read_body, split_fields
from reconcile.errors import InputError

#: Separators tried when the file or profile does not name one, in order of preference on ties.
DELIMITERS = (",", ";", "\t", "|")
#: How many records above the header may be a title or preamble before we give up looking.
HEADER_SEARCH = 20
_SEP_LINE = re.compile(r"^\s*sep=(.)[,;\t| ]*$", re.IGNORECASE)
_TEXT = re.compile(rb"[^\s\x00]")


@dataclass
class CsvTable:
    """A CSV file's data records as string cells, each with the physical line it starts on."""

    path: Path
    sha256: str
    encoding: str
    delimiter: str
    header_line: int  # physical line of the header row
    header: list[str]  # column names as written (whitespace trimmed)
    cells: Any  # pyarrow.Table of strings, columns in header order, one row per data record
    lines: IntArray  # physical line where each row starts (header = its own line)
    #: row position -> number of fields, for rows with non-empty fields beyond the header's
    overflow: dict[int, int] = field(default_factory=dict)
    #: row position -> the line an unclosed quote on the row's line would have run on to;
    #: such a row is that one line, its cells empty, and reading went on with the next line
    broken: dict[int, int] = field(default_factory=dict)
    blank_rows: int = 0  # empty records (blank lines, ";;;;" padding) skipped
    preamble_lines: int = 0  # non-empty lines above the header (titles), skipped
    _data: bytes = b""
    _spans: IntArray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))

    @property
    def rows(self) -> int:
        return int(self.cells.num_rows)

    def column(self, index: int) -> Any:
        """The cells of one column (pyarrow ChunkedArray of strings, never null)."""
        return self.cells.column(index)

    def raw(self, row: int) -> str:
        """The record's text as written in the file (for error reports)."""
        start, stop = (int(x) for x in self._spans[row])
        return self._data[start:stop].decode("utf-8", errors="replace").rstrip("\r\n")


def sniff_delimiter(header: str) -> str:
    """The separator the header row uses most often outside quotes (`,` when none)."""
    outside = re.sub(r'"[^"]*"', "", header)
    counts = {d: outside.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _delimiter_setting(value: str | None, path: Path) -> str | None:
    if value is None:
        return None
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
    d = named.get(value.strip().lower(), value)
    if len(d) != 1 or not d.isascii() or d in '"\r\n':
        raise InputError(
            f"delimiter {value!r} must be one ASCII character (or 'tab')",
            file=path,
            field="delimiter",
        )
    return d


def read_table(
    path: Path,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    is_header: Callable[[list[str]], bool] | None = None,
    raw: bytes | None = None,
) -> CsvTable:
    """Read a CSV file into string cells; every record kept, numbered by its physical line.

    `raw`: the file's bytes, or a piece of them (books/pieces.py), if already read.
    """
    if raw is None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    sha = hashlib.sha256(raw).hexdigest()
    if not _TEXT.search(raw):
        raise InputError("the file is empty", file=path)
    data, enc = decode(raw, encoding, path)
    if b"\n" not in data and b"\r" in data:
        data = data.replace(b"\r", b"\n")  # old Mac line ends: one record per '\r'
    if not _TEXT.search(data):
        raise InputError("the file is empty", file=path)
    sep = _delimiter_setting(delimiter, path)
    starts, stops, lines = find_records(data)

    def text(i: int) -> str:
        return data[starts[i] : stops[i]].decode("utf-8").rstrip("\r")

    first = 0
    explicit_sep = sep
    if len(starts) and (m := _SEP_LINE.match(text(0))):
        explicit_sep = explicit_sep or m.group(1)
        first = 1
    header_at, fallback, preamble = -1, -1, 0
    for i in range(first, min(len(starts), first + HEADER_SEARCH)):
        t = text(i)
        if not t.strip(" ,;\t|"):
            continue
        names = split_fields(t, explicit_sep or sniff_delimiter(t))
        if fallback < 0:
            fallback = i
        if is_header is None or is_header([n.strip() for n in names]):
            header_at = i
            break
    if header_at < 0:
        header_at = fallback
    if header_at < 0:
        raise InputError("no header row: the file holds no text", file=path)
    preamble = sum(1 for i in range(first, header_at) if text(i).strip(" ,;\t|"))
    header_text = text(header_at)
    sep = explicit_sep or sniff_delimiter(header_text)
    header = [n.strip() for n in split_fields(header_text, sep)]
    body_from = header_at + 1
    body_offset = int(starts[body_from]) if body_from < len(starts) else len(data)
    body = data[body_offset:]
    rel_starts = starts[body_from:] - body_offset
    rel_stops = stops[body_from:] - body_offset
    parsed = read_body(body, rel_starts, rel_stops, header, sep)
    base = int(lines[body_from]) - 1 if body_from < len(lines) else int(lines[header_at])
    table = CsvTable(
        path=path,
        sha256=sha,
        encoding=enc,
        delimiter=sep,
        header_line=int(lines[header_at]),
        header=header,
        cells=parsed.cells,
        lines=np.asarray(parsed.lines + base, dtype=np.int64),
        overflow=parsed.overflow,
        broken={row: last + base for row, last in parsed.broken.items()},
        preamble_lines=preamble,
        _data=data,
        _spans=parsed.spans + body_offset,
    )
    return _drop_blank(table)


def _drop_blank(table: CsvTable) -> CsvTable:
    """Remove records with no text in any cell (blank lines, Excel's `;;;;` padding), counted."""
    if not table.rows:
        return table
    blank = np.ones(table.rows, dtype=bool)
    for i in range(table.cells.num_columns):
        col = pc.utf8_trim_whitespace(table.cells.column(i))
        blank &= pc.equal(col, "").to_numpy(zero_copy_only=False)
    for pos in (*table.overflow, *table.broken):
        blank[pos] = False
    if not blank.any():
        return table
    keep = np.flatnonzero(~blank)
    new_pos = np.full(table.rows, -1, dtype=np.int64)
    new_pos[keep] = np.arange(len(keep))
    table.cells = table.cells.take(pa.array(keep))
    table.lines = table.lines[keep]
    table._spans = table._spans[keep]
    table.overflow = {int(new_pos[p]): w for p, w in table.overflow.items()}
    table.broken = {int(new_pos[p]): last for p, last in table.broken.items()}
    table.blank_rows = int(blank.sum())
    return table
