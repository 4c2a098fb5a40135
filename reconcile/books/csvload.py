"""Reading CSV files as Excel and finance systems write them, without losing a record.

A file is read in three vectorised passes:

1. decode: a declared encoding wins; else UTF-8 (with or without BOM), UTF-16 with a BOM
   (Excel's "Unicode text"), and GB18030 (a superset of GBK/GB2312) when the bytes are not
   UTF-8 at all. A UTF-8 file with a few corrupt bytes is an error, not silently re-read as GBK.
2. find every record: newlines outside double quotes end records, so each record knows the
   physical line it starts on even when a quoted field holds a newline.
3. parse the fields as strings with pyarrow. Records whose field count differs from the
   header's are re-read one by one with the csv module: short ones are padded with empty
   cells, long ones keep their extra fields' count so the loader can report them.

If pyarrow and the quote scan ever disagree on the records (a stray quote inside an unquoted
field), the whole file is re-read with the csv module instead: slower, never wrong.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import sys
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pydantic import ValidationError

from reconcile.errors import InputError
from reconcile.pricing.rules import ColumnMap

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Separators tried when the file or profile does not name one, in order of preference on ties.
DELIMITERS = (",", ";", "\t", "|")
#: How many records above the header may be a title or preamble before we give up looking.
HEADER_SEARCH = 20
_SEP_LINE = re.compile(r"^\s*sep=(.)[,;\t| ]*$", re.IGNORECASE)
_TEXT = re.compile(rb"[^\s\x00]")
_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0"

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


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


# --------------------------------------------------------------------------- profiles / columns


def load_profile(path: Path) -> ColumnMap:
    """A ledger profile TOML: `[columns]` renames, plus currency/encoding/delimiter/... settings."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read profile: {exc.strerror}", file=path) from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML: {exc}", file=path) from None
    try:
        return ColumnMap.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise InputError(err["msg"], file=path, field=where) from None


def merge_maps(base: ColumnMap, profile: ColumnMap | None) -> ColumnMap:
    """The rules file's mapping overridden, key by key, by a profile's."""
    if profile is None:
        return base
    merged = base.model_dump()
    for key, value in profile.model_dump().items():
        if key == "columns":
            merged["columns"] = {**base.columns, **profile.columns}
        elif value is not None:
            merged[key] = value
    return ColumnMap.model_validate(merged)


def norm_name(name: str) -> str:
    """Column names compare forgivingly: case, width, spaces, `_`, `-` and `.` do not matter."""
    text = unicodedata.normalize("NFKC", name).casefold()
    return re.sub(r"[\s_\-.]+", "", text)


#: Header names understood without a mapping besides the canonical ones (normalised).
#: Kept to names nobody uses for anything else; everything else needs an explicit mapping.
ALIASES = {"model": "model_name", "token": "token_name"}


@dataclass(frozen=True)
class Binding:
    """Which file column holds each canonical column, and which columns nothing reads."""

    index: dict[str, int]  # canonical name -> column position
    names: dict[str, str]  # canonical name -> column name as written in the file
    ignored: list[str]  # file columns mapped to nothing (listed, never an error)


def bind_columns(
    header: list[str],
    mapping: Mapping[str, str],
    canonical: Iterable[str],
    *,
    path: Path,
    line: int,
    setting: str,
) -> Binding:
    """Map the file's header to canonical names via `mapping` ("Their Column" = "canonical")."""
    known = tuple(canonical)
    lookup = {norm_name(c): c for c in known}
    lookup.update({k: v for k, v in ALIASES.items() if v in known and k not in lookup})
    for theirs, ours in mapping.items():
        if ours not in known:
            raise InputError(
                f"{theirs!r} maps to {ours!r}, which is not a column this file can have "
                f"(one of: {', '.join(known)})",
                field=f"{setting}.columns.{theirs}",
            )
        lookup[norm_name(theirs)] = ours
    index: dict[str, int] = {}
    names: dict[str, str] = {}
    ignored: list[str] = []
    for pos, name in enumerate(header):
        canon = lookup.get(norm_name(name)) if name else None
        if canon is None:
            ignored.append(name or f"(unnamed column {pos + 1})")
            continue
        if canon in index:
            raise InputError(
                f"columns {names[canon]!r} and {name!r} both map to {canon!r}; rename one or "
                f"map it in [{setting}.columns]",
                file=path,
                line=line,
                field=canon,
            )
        index[canon] = pos
        names[canon] = name
    return Binding(index=index, names=names, ignored=ignored)


def header_matcher(
    mapping: Mapping[str, str], canonical: Iterable[str], wanted: Iterable[str]
) -> Callable[[list[str]], bool]:
    """A test for "this row is the header": it names at least one of the `wanted` columns."""
    known = tuple(canonical)
    lookup = {norm_name(c): c for c in known}
    lookup.update({k: v for k, v in ALIASES.items() if v in known and k not in lookup})
    lookup.update({norm_name(k): v for k, v in mapping.items()})
    targets = set(wanted)
    return lambda names: any(lookup.get(norm_name(n)) in targets for n in names)


# --------------------------------------------------------------------------- decoding


def _line_at(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def _decode_as(raw: bytes, encoding: str, path: Path) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not valid {encoding} text (byte {exc.start}); set `encoding` in the profile",
            file=path,
            line=_line_at(raw, exc.start),
            field="encoding",
        ) from None


def decode(raw: bytes, declared: str | None, path: Path) -> tuple[bytes, str]:
    """The file as UTF-8 bytes without a BOM, and the encoding it was read as."""
    if raw.startswith(_XLSX_MAGIC) or raw.startswith(_XLS_MAGIC):
        raise InputError(
            "this is an Excel workbook, not CSV: save it as 'CSV UTF-8' first", file=path
        )
    if declared:
        try:
            name = codecs.lookup(declared.strip()).name
        except LookupError:
            raise InputError(
                f"unknown encoding {declared!r}", file=path, field="encoding"
            ) from None
        if name == "utf-8":
            name = "utf-8-sig"  # a declared UTF-8 file may still start with a BOM
        return _decode_as(raw, name, path).encode("utf-8"), name
    if raw.startswith(codecs.BOM_UTF8):
        body = raw[len(codecs.BOM_UTF8) :]
        _decode_as(body, "utf-8", path)
        return body, "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode_as(raw, "utf-16", path).encode("utf-8"), "utf-16"
    if b"\x00" in raw[:4096]:
        raise InputError("binary data, not CSV text", file=path)
    try:
        raw.decode("utf-8")
        return raw, "utf-8"
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    # Mostly-valid UTF-8 with a few bad bytes is a damaged UTF-8 file, not GBK.
    text = raw.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    good = len(text) - len(text.encode("ascii", "ignore")) - bad
    if good >= 3 * bad:
        raise InputError(
            f"not valid UTF-8 (byte {first_bad}); fix the file or set `encoding` in the profile",
            file=path,
            line=_line_at(raw, first_bad),
            field="encoding",
        )
    try:
        return raw.decode("gb18030").encode("utf-8"), "gb18030"
    except UnicodeDecodeError:
        raise InputError(
            'neither UTF-8 nor GBK text; set `encoding` (e.g. "cp1252") in the profile',
            file=path,
            line=_line_at(raw, first_bad),
            field="encoding",
        ) from None


# --------------------------------------------------------------------------- records


def _records(data: bytes) -> tuple[IntArray, IntArray, IntArray]:
    """Start and stop offsets of every record, and the physical line each starts on."""
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 0x0A).astype(np.int64)
    if b'"' in data:
        quotes = np.flatnonzero(buf == 0x22)
        ends = newlines[(np.searchsorted(quotes, newlines) & 1) == 0]
    else:
        ends = newlines
    starts = np.concatenate((np.zeros(1, dtype=np.int64), ends + 1))
    stops = np.concatenate((ends, np.array([len(data)], dtype=np.int64)))
    if len(starts) and starts[-1] >= len(data):
        starts, stops = starts[:-1], stops[:-1]
    lines = (np.searchsorted(newlines, starts) + 1).astype(np.int64)
    return starts, stops, lines


def _fields(text: str, delimiter: str) -> list[str]:
    """One record's fields, read by the csv module (quotes, doubled quotes, newlines)."""
    try:
        return next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
    except csv.Error:
        return text.split(delimiter)


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
) -> CsvTable:
    """Read a CSV file into string cells; every record kept, numbered by its physical line."""
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
    starts, stops, lines = _records(data)

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
        names = _fields(t, explicit_sep or sniff_delimiter(t))
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
    header = [n.strip() for n in _fields(header_text, sep)]
    body_from = header_at + 1
    body_offset = int(starts[body_from]) if body_from < len(starts) else len(data)
    body = data[body_offset:]
    rel_starts = starts[body_from:] - body_offset
    rel_stops = stops[body_from:] - body_offset
    cells, positions_ok, overflow, spans = _parse_body(body, rel_starts, rel_stops, header, sep)
    if positions_ok:
        body_lines = lines[body_from:]
    else:
        cells, body_lines, overflow, spans = _parse_body_csv(body, header, sep, path)
        body_lines = body_lines + int(lines[body_from] if body_from < len(lines) else 1) - 1
    spans = spans + body_offset
    table = CsvTable(
        path=path,
        sha256=sha,
        encoding=enc,
        delimiter=sep,
        header_line=int(lines[header_at]),
        header=header,
        cells=cells,
        lines=np.asarray(body_lines, dtype=np.int64),
        overflow=overflow,
        preamble_lines=preamble,
        _data=data,
        _spans=spans,
    )
    return _drop_blank(table)


def _column_names(n: int) -> list[str]:
    return [f"c{i}" for i in range(n)]


def _string_table(rows: list[list[str]], ncols: int) -> Any:
    cols = _column_names(ncols)
    return pa.table(
        {c: pa.array([r[i] for r in rows], type=pa.string()) for i, c in enumerate(cols)}
    )


def _fit(fields: list[str], ncols: int) -> tuple[list[str], int | None]:
    """Pad a short record with empty cells; cut a long one, saying so when it lost text."""
    if len(fields) <= ncols:
        return fields + [""] * (ncols - len(fields)), None
    extra = fields[ncols:]
    return fields[:ncols], (len(fields) if any(x.strip() for x in extra) else None)


def _arrow_parse(body: bytes, width: int, sep: str, has_quotes: bool) -> tuple[Any, int]:
    """pyarrow's parse with `width` string columns: (table or None, records it set aside)."""
    cols = _column_names(width)
    skipped: list[int] = []

    def on_invalid(_row: Any) -> str:
        skipped.append(1)
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(column_names=cols, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(
                delimiter=sep,
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=has_quotes,
                ignore_empty_lines=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in cols},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException):
        return None, 0
    return table, len(skipped)


def _field_counts(
    body: bytes, starts: IntArray, stops: IntArray, sep: str, has_quotes: bool
) -> tuple[IntArray, BoolArray]:
    """Fields per record (separators outside quotes + 1), and which records are empty."""
    n = len(starts)
    buf = np.frombuffer(body, dtype=np.uint8)
    delims = np.flatnonzero(buf == ord(sep))
    if has_quotes:
        quotes = np.flatnonzero(buf == 0x22)
        delims = delims[(np.searchsorted(quotes, delims) & 1) == 0]
    owner = np.searchsorted(starts, delims, side="right") - 1
    counts = np.bincount(owner, minlength=n)[:n] + 1
    lengths = stops - starts
    blank = (lengths == 0) | ((lengths == 1) & (buf[np.minimum(starts, len(buf) - 1)] == 0x0D))
    return counts.astype(np.int64), np.asarray(blank, dtype=bool)


def _parse_body(
    body: bytes, starts: IntArray, stops: IntArray, header: list[str], sep: str
) -> tuple[Any, bool, dict[int, int], IntArray]:
    """pyarrow parse of the data records; False when it cannot be aligned with the records.

    Records pyarrow sets aside (another field count than the header's) are re-read one by
    one. When most records share another width (every data line ends with a separator the
    header lacks), pyarrow parses that width instead and the extra cells are checked empty.
    """
    ncols = max(len(header), 1)
    spans = np.stack((starts, stops), axis=1) if len(starts) else np.zeros((0, 2), np.int64)
    if not len(starts):
        return _string_table([], ncols), True, {}, spans
    n = len(starts)
    has_quotes = b'"' in body
    # pyarrow calls back once per record it sets aside, which is slow for millions: guess
    # the width most records have from the first thousand before parsing them all.
    k = min(n, 1000)
    sample, sample_blank = _field_counts(
        body[: stops[k - 1]], starts[:k], stops[:k], sep, has_quotes
    )
    width = max(ncols, _most_common(sample[~sample_blank], ncols))
    table, skipped = _arrow_parse(body, width, sep, has_quotes)
    if table is None:
        return None, False, {}, spans
    counts = np.zeros(0, dtype=np.int64)
    valid = np.ones(n, dtype=bool)
    if skipped or table.num_rows != n:
        counts, blank = _field_counts(body, starts, stops, sep, has_quotes)
        common = _most_common(counts[~blank], ncols)
        if common > width and int((counts == common).sum()) > skipped // 2:
            table, skipped = _arrow_parse(body, common, sep, has_quotes)
            if table is None:
                return None, False, {}, spans
            width = common
        valid = (counts == width) | blank
    invalid_at = np.flatnonzero(~valid)
    if int(valid.sum()) != table.num_rows or len(invalid_at) != skipped:
        return None, False, {}, spans
    if not len(invalid_at) and width == ncols:
        return table, True, {}, spans
    rows: list[list[str]] = []
    overflow: dict[int, int] = {}
    for pos in invalid_at:
        record = body[starts[pos] : stops[pos]].decode("utf-8").rstrip("\r")
        fitted, wide = _fit(_fields(record, sep), width)
        rows.append(fitted)
        if wide is not None:
            overflow[int(pos)] = wide
    order = np.argsort(np.concatenate((np.flatnonzero(valid), invalid_at)), kind="stable")
    combined = pa.concat_tables([table, _string_table(rows, width)]).take(pa.array(order))
    if width > ncols:
        spill = np.zeros(n, dtype=bool)
        for i in range(ncols, width):
            col = pc.utf8_trim_whitespace(combined.column(i))
            spill |= np.asarray(pc.not_equal(col, "").to_numpy(zero_copy_only=False), dtype=bool)
        if spill.any() and not len(counts):
            counts, _ = _field_counts(body, starts, stops, sep, has_quotes)
        for pos in np.flatnonzero(spill):
            overflow.setdefault(int(pos), int(counts[pos]))
        combined = combined.select(list(range(ncols)))
    return combined, True, overflow, spans


def _most_common(counts: IntArray, default: int) -> int:
    return int(np.bincount(counts).argmax()) if len(counts) else default


def _parse_body_csv(
    body: bytes, header: list[str], sep: str, path: Path
) -> tuple[Any, IntArray, dict[int, int], IntArray]:
    """The slow, exact path: the csv module reads every record and counts its lines."""
    ncols = max(len(header), 1)
    text = body.decode("utf-8")
    buf = np.frombuffer(body, dtype=np.uint8)
    line_starts = np.concatenate(([0], np.flatnonzero(buf == 0x0A) + 1)).astype(np.int64)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    rows: list[list[str]] = []
    first_lines: list[int] = []
    last_lines: list[int] = []
    overflow: dict[int, int] = {}
    prev = 0
    try:
        for fields in reader:
            first_lines.append(prev + 1)
            last_lines.append(reader.line_num)
            prev = reader.line_num
            fitted, wide = _fit(fields, ncols)
            if wide is not None:
                overflow[len(rows)] = wide
            rows.append(fitted)
    except csv.Error as exc:
        raise InputError(f"not readable as CSV: {exc}", file=path) from None
    first = np.asarray(first_lines, dtype=np.int64)
    last = np.asarray(last_lines, dtype=np.int64)
    begin = line_starts[np.minimum(first - 1, len(line_starts) - 1)]
    end_idx = np.minimum(last, len(line_starts) - 1)
    end = np.where(last < len(line_starts), line_starts[end_idx] - 1, len(body))
    spans = np.stack((begin, end), axis=1) if len(rows) else np.zeros((0, 2), np.int64)
    return _string_table(rows, ncols), first, overflow, spans


def _drop_blank(table: CsvTable) -> CsvTable:
    """Remove records with no text in any cell (blank lines, Excel's `;;;;` padding), counted."""
    if not table.rows:
        return table
    blank = np.ones(table.rows, dtype=bool)
    for i in range(table.cells.num_columns):
        col = pc.utf8_trim_whitespace(table.cells.column(i))
        blank &= pc.equal(col, "").to_numpy(zero_copy_only=False)
    for pos in table.overflow:
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
    table.blank_rows = int(blank.sum())
    return table
