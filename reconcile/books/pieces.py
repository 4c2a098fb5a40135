"""Reading a large ledger in pieces, so the peak follows one piece, not the file.

Read whole, a CSV's bytes, its records' string cells and each column's parsed values are held
at once: about 0.6 GB above the result per million ledger rows (benchmarks/README.md), 6 GB
for 10M. A file larger than PIECE_BYTES is read a piece at a time instead: each piece is the
lines up to and including the header followed by whole lines of the body, read exactly as a
file, its rows' line numbers moved to where they are in the file, and the pieces' rows joined.

Only where that reads the file exactly as whole; otherwise it is read whole:
- the body holds no double quote, so every line is one record and no cut falls inside a value;
- the file reads as UTF-8, and every piece reads with the first's separator, header, columns
  and decimal style, with nothing to note (a note counts values over the whole file);
- amounts are given as quota only: an `amount` column's currency is decided over the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from reconcile.books.book import Book, close_book
from reconcile.books.ledger import open_ledger, read_rows
from reconcile.core.results import Ledger
from reconcile.errors import InputError
from reconcile.pricing.rules import Rules

PIECE_BYTES = 8 << 20  # ~125,000 rows: reading one holds ~15x its bytes
_UTF8 = ("utf-8", "utf-8-sig")


def load_in_pieces(
    path: Path, rules: Rules, tz: ZoneInfo, profile: Path | None, piece_bytes: int = PIECE_BYTES
) -> Ledger | None:
    """The ledger read piece by piece, or None where it must be read whole (see above)."""
    try:
        if path.stat().st_size <= piece_bytes:
            return None
    except OSError:
        return None  # the whole read says what is wrong with the file
    sha = hashlib.sha256()
    rows: list[pd.DataFrame] = []
    unreadable: list[pd.DataFrame] = []
    first: Book | None = None
    prefix = b""
    moved = 0  # lines of the body in the pieces before this one
    blank = 0
    decided = ("", "")
    for block in _blocks(path, piece_bytes, sha):
        if first is None:
            try:
                book = open_ledger(path, rules, profile, raw=block)
            except InputError:
                return None  # no header in the first piece: the whole read tells
            cut = _after_line(block, book.table.header_line)
            if cut < 0 or book.table.encoding not in _UTF8 or book.cells.has("amount"):
                return None
            prefix, body = block[:cut], block[cut:]
        else:
            body = block
            book = open_ledger(path, rules, profile, raw=prefix + body)
        if b'"' in body:
            return None
        got, bad, currency, key = read_rows(book, rules, tz)
        if first is None:
            first, decided = book, (currency, key)
        elif not _read_alike(first, book) or (currency, key) != decided:
            return None
        got["line"] += moved
        bad["line"] += moved
        rows.append(got)
        unreadable.append(bad)
        blank += book.table.blank_rows
        moved += body.count(b"\n")
    if first is None:
        return None
    first.table.sha256 = sha.hexdigest()
    first.table.blank_rows = blank
    return close_book(first, _joined(rows), _joined(unreadable), *decided)


def _joined(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames one under the other, a column at a time, emptying `frames`.

    A piece's numpy columns share one 2-D block, which a column taken out of it keeps whole:
    so each piece is first split into columns of their own (a copy of one piece at a time) and
    let go, then each joined column is built while that column's pieces are let go, and the
    joined columns are not consolidated into a block (which would copy them all again). The
    rows are held about once: at 10M rows the read peaked 0.6 GB lower (benchmarks/README.md).
    """
    names = list(frames[0].columns)
    split: list[dict[str, pd.Series]] = []
    while frames:
        frame = frames.pop(0)
        split.append({name: frame[name].copy() for name in names})
        del frame
    out = {
        name: pd.concat([piece.pop(name) for piece in split], ignore_index=True) for name in names
    }
    return pd.DataFrame(out, columns=names, copy=False)


def _blocks(path: Path, size: int, sha: hashlib._Hash) -> Iterator[bytes]:
    """The file in blocks of about `size` bytes, each ending at a line end (the last at EOF)."""
    rest = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(size):
            sha.update(chunk)
            data = rest + chunk
            end = data.rfind(b"\n") + 1
            if end == 0:
                rest = data
                continue
            rest = data[end:]
            yield data[:end]
    if rest:
        yield rest


def _after_line(data: bytes, line: int) -> int:
    """Offset just after the `line`-th line end of `data` (1-based), -1 when it has fewer."""
    at = -1
    for _ in range(line):
        at = data.find(b"\n", at + 1)
        if at < 0:
            return -1
    return at + 1


def _read_alike(a: Book, b: Book) -> bool:
    """Whether two pieces were read with the same settings and detections."""
    ta, tb = a.table, b.table
    return (
        (ta.encoding, ta.delimiter, ta.header, ta.header_line, ta.preamble_lines)
        == (tb.encoding, tb.delimiter, tb.header, tb.header_line, tb.preamble_lines)
        and a.decimal == b.decimal
        and not a.notes  # a note (a decimal style seen) counts values over the whole file
        and not b.notes
    )
