"""Splitting a CSV body into records, each numbered by the physical line it starts on.

1. find every record: newlines outside double quotes end records, so each record knows the
   physical line it starts on even when a quoted field holds a newline.
2. parse the fields as strings with pyarrow. Records whose field count differs from the
   header's are re-read one by one with the csv module: short ones are padded with empty
   cells, long ones keep their extra fields' count so the loader can report them.

If pyarrow and the quote scan ever disagree on the records (a stray quote inside an unquoted
field), or a quoted value looks like it runs away (a quote never closed swallows the lines
after it), the body is re-read with the csv module instead: slower, never wrong. There an
unclosed quote costs one line, not the rest of the file: a record that spans lines and then
has more fields than the header, or whose quote is still open at the end of the file or closes
on text that is not a separator (what a second stray quote does), is cut
back to its first line, which is reported as unreadable, and reading resumes on the next line.
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class Body:
    """The data records of a CSV body: cells, lines (1-based, relative to the body) and spans."""

    cells: Any  # pyarrow.Table of strings, one column per header name
    lines: IntArray  # line each record starts on, 1 = the body's first line
    spans: IntArray  # (start, stop) byte offsets of each record in the body
    #: record -> number of fields, for records with non-empty fields beyond the header's
    overflow: dict[int, int] = field(default_factory=dict)
    #: record -> last line (relative) an unclosed quote on the record's line would have run to
    broken: dict[int, int] = field(default_factory=dict)


def read_body(body: bytes, starts: IntArray, stops: IntArray, header: list[str], sep: str) -> Body:
    """The body's records: pyarrow when the quote scan can be trusted, else the csv module."""
    if b'"' in body and _runaway_suspected(body, starts, stops, max(len(header), 1), sep):
        return _parse_body_csv(body, header, sep)
    cells, positions_ok, overflow, spans = _parse_body(body, starts, stops, header, sep)
    if not positions_ok:
        return _parse_body_csv(body, header, sep)
    buf = np.frombuffer(body, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 0x0A)
    lines = (np.searchsorted(newlines, starts) + 1).astype(np.int64)
    return Body(cells=cells, lines=lines, spans=spans, overflow=overflow)


def _runaway_suspected(
    body: bytes, starts: IntArray, stops: IntArray, ncols: int, sep: str
) -> bool:
    """An odd number of quotes, a quote out of place, or a record over several lines with
    another field count than the header's: any of these sends the body to the csv module."""
    buf = np.frombuffer(body, dtype=np.uint8)
    quotes = np.flatnonzero(buf == 0x22)
    if len(quotes) % 2 or not _quotes_in_place(buf, quotes, sep):
        return True
    newlines = np.flatnonzero(buf == 0x0A)
    inner = (np.searchsorted(newlines, stops) - np.searchsorted(newlines, starts)) > 0
    if not inner.any():
        return False
    counts, _ = _field_counts(body, starts, stops, sep, True)
    return bool((counts[inner] != ncols).any())


def _quotes_in_place(buf: npt.NDArray[np.uint8], quotes: IntArray, sep: str) -> bool:
    """Every quote opens a field (after a separator, a line start or a quote) and every one
    closes it (before a separator, a line end, a quote or the end): quotes taken in pairs."""
    opening, closing = quotes[0::2], quotes[1::2]
    before = buf[np.maximum(opening - 1, 0)]
    opens_ok = (opening == 0) | np.isin(before, (ord(sep), 0x0A, 0x22))
    after = buf[np.minimum(closing + 1, len(buf) - 1)]
    closes_ok = (closing + 1 == len(buf)) | np.isin(after, (ord(sep), 0x0A, 0x0D, 0x22))
    return bool(opens_ok.all() and closes_ok.all())


def _strict_ok(text: str, sep: str) -> bool:
    """The text parses as CSV with every quote closed and followed by a separator or line end."""
    try:
        for _ in csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True):
            pass
    except csv.Error:
        return False
    return True


def find_records(data: bytes) -> tuple[IntArray, IntArray, IntArray]:
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


def split_fields(text: str, delimiter: str) -> list[str]:
    """One record's fields, read by the csv module (quotes, doubled quotes, newlines)."""
    try:
        return next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
    except csv.Error:
        return text.split(delimiter)


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
        fitted, wide = _fit(split_fields(record, sep), width)
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


def _parse_body_csv(body: bytes, header: list[str], sep: str) -> Body:
    """The slow, exact path: the csv module reads every record and counts its lines.

    A runaway record (see the module docstring) becomes an empty record on its first line,
    marked broken, and the reader starts again on the line after it.
    """
    ncols = max(len(header), 1)
    pieces = body.decode("utf-8").split("\n")
    physical = [p + "\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    total = len(physical)
    rows: list[list[str]] = []
    first_lines: list[int] = []
    last_lines: list[int] = []
    overflow: dict[int, int] = {}
    broken: dict[int, int] = {}
    at = 0  # lines read so far (0-based index of the next line)
    while at < total:
        reader = csv.reader(islice(physical, at, None), delimiter=sep)
        prev, restart = at, -1
        try:
            for fields in reader:
                first, last = prev + 1, at + reader.line_num
                prev = last
                if last > first and _runs_away(fields, ncols, physical, first, last, sep):
                    broken[len(rows)] = last
                    rows.append([""] * ncols)
                    first_lines.append(first)
                    last_lines.append(first)
                    restart = first
                    break
                fitted, wide = _fit(fields, ncols)
                if wide is not None:
                    overflow[len(rows)] = wide
                rows.append(fitted)
                first_lines.append(first)
                last_lines.append(last)
        except csv.Error:
            broken[len(rows)] = prev + 1
            rows.append([""] * ncols)
            first_lines.append(prev + 1)
            last_lines.append(prev + 1)
            restart = prev + 1
        if restart < 0:
            break
        at = restart
    buf = np.frombuffer(body, dtype=np.uint8)
    line_starts = np.concatenate(([0], np.flatnonzero(buf == 0x0A) + 1)).astype(np.int64)
    first_arr = np.asarray(first_lines, dtype=np.int64)
    last_arr = np.asarray(last_lines, dtype=np.int64)
    begin = line_starts[np.minimum(first_arr - 1, len(line_starts) - 1)]
    end_idx = np.minimum(last_arr, len(line_starts) - 1)
    end = np.where(last_arr < len(line_starts), line_starts[end_idx] - 1, len(body))
    spans = np.stack((begin, end), axis=1) if len(rows) else np.zeros((0, 2), np.int64)
    return Body(
        cells=_string_table(rows, ncols),
        lines=first_arr,
        spans=spans.astype(np.int64),
        overflow=overflow,
        broken=broken,
    )


def _runs_away(
    fields: list[str], ncols: int, physical: list[str], first: int, last: int, sep: str
) -> bool:
    """A record over several lines that cannot be one row: too many fields, or a quote that
    is still open at the end of the file or closes on text that is not a separator."""
    if len(fields) > ncols and any(x.strip() for x in fields[ncols:]):
        return True
    return not _strict_ok("".join(physical[first - 1 : last]), sep)
