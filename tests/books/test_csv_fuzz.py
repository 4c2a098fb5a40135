"""Property-based fuzzing of the CSV reader: whatever the bytes, no crash and no lost row.

Files are built from rows of hostile cells (separators, quotes opened and never closed,
line breaks, CR/LF mixes, non-ASCII text) in the encodings exporters write, or are plain
random bytes. For every file:
- reading it either works or raises InputError (one line for the user), nothing else;
- every physical line below the header belongs to exactly one record, or is blank;
- every record ends up either a row or an unreadable row with its line, never both.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from match_helpers import TZ

from reconcile.books.columns import header_matcher
from reconcile.books.csvload import CsvTable, read_table
from reconcile.books.invoice import INVOICE_COLUMNS, load_invoice
from reconcile.books.ledger import HEADER_NAMES, LEDGER_COLUMNS, load_ledger
from reconcile.core.results import Ledger
from reconcile.errors import InputError
from reconcile.pricing.rules import Rules

SH = ZoneInfo(TZ)
RULES = Rules()
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

GOOD_CELLS = {
    "log_id": st.sampled_from(["1", "42", "", "x", "1,234"]),
    "request_id": st.sampled_from(["req-1", "", '"req, 2"']),
    "created_at": st.sampled_from(["2026-10-05 10:00:00", "1791165600", "", "2026-13-01"]),
    "type": st.sampled_from(["consume", "refund", "2", "消费", "chargeback", ""]),
    "quota": st.sampled_from(["5", "-0", "12,500", '"1,5"', "five", "", "(3)"]),
    "model_name": st.sampled_from(["gpt-4o", "模型", "", '5" screen']),
    "amount": st.sampled_from(["$1.00", "¥0.18", "-0", "1,5", "", "x"]),
    "currency": st.sampled_from(["USD", "CNY", "", "XYZ"]),
}
HOSTILE = st.text(alphabet=st.sampled_from(list('a1,;"\t\n\r é模|')), max_size=12)


def _cell(name: str) -> st.SearchStrategy[str]:
    return st.one_of(GOOD_CELLS[name], HOSTILE) if name in GOOD_CELLS else HOSTILE


def _encoded(text: str, encoding: str) -> bytes:
    return text.encode(encoding)


ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "gb18030"])


def _file(columns: list[str]) -> st.SearchStrategy[tuple[bytes, list[int] | None]]:
    """(file bytes, the line each data row starts on when the rows are known to be rows)."""
    sep = st.sampled_from([",", ";", "\t"])
    newline = st.sampled_from(["\n", "\r\n"])
    width = len(columns)

    @st.composite
    def hostile(draw: st.DrawFn) -> tuple[bytes, list[int] | None]:
        s, nl = draw(sep), draw(newline)
        rows = draw(st.lists(st.tuples(*[_cell(c) for c in columns]), max_size=12))
        text = nl.join([s.join(columns)] + [s.join(r) for r in rows]) + draw(
            st.sampled_from(["", nl])
        )
        return _encoded(text, draw(ENCODINGS)), None

    plain = st.text(alphabet=st.sampled_from(list("a1 é模.-$")), max_size=8)
    quoted_text = st.text(alphabet=st.sampled_from(list('a1,;"\t\n é')), max_size=10)

    @st.composite
    def known_rows(draw: st.DrawFn) -> tuple[bytes, list[int] | None]:
        """Rows that are rows: plain cells and, either, quoted cells (line breaks, separators,
        doubled quotes) or, in other files, unclosed quotes (`"a...`, never closed)."""
        s, nl = draw(sep), draw(newline)
        broken_quotes = draw(st.booleans())
        lines = [s.join(columns)]
        starts: list[int] = []
        line = 2
        for _ in range(draw(st.integers(0, 12))):
            cells = []
            for name in columns:
                kind = draw(st.sampled_from(["good", "plain", "special"]))
                if kind == "good":
                    value = draw(GOOD_CELLS.get(name, plain))
                    value = value.replace('"', "").replace(s, "")  # one field, unquoted
                elif kind == "plain":
                    value = draw(plain)
                elif broken_quotes:
                    value = '"a' + draw(plain)
                else:
                    value = '"' + draw(quoted_text).replace('"', '""') + '"'
                cells.append(value.replace("\n", nl) if not broken_quotes else value)
            row = s.join(cells[:width])
            starts.append(line)
            line += row.count("\n")
            line += 1
            lines.append(row)
        text = nl.join(lines) + draw(st.sampled_from(["", nl]))
        return _encoded(text, draw(ENCODINGS)), starts

    return st.one_of(hostile(), known_rows(), st.binary(max_size=200).map(lambda b: (b, None)))


def _accounted(path: Path, table: CsvTable) -> None:
    """Every line below the header is in exactly one record, or blank."""
    raw = path.read_bytes()
    text = raw.decode(table.encoding)
    if "\n" not in text:
        text = text.replace("\r", "\n")
    physical = text.split("\n")
    owner: dict[int, int] = {}
    for row in range(table.rows):
        first = int(table.lines[row])
        for line in range(first, first + table.raw(row).count("\n") + 1):
            assert line not in owner, f"line {line} is in records {owner[line]} and {row}"
            owner[line] = row
    for number, content in enumerate(physical, start=1):
        if number <= table.header_line or number in owner:
            continue
        assert not content.strip(' ,;\t|\r"'), f"line {number} {content!r} is lost"


def _partitioned(table: CsvTable, book: Ledger) -> None:
    """Each record is a row or an unreadable row, exactly once."""
    read = book.rows["line"].tolist() + book.unreadable["line"].tolist()
    assert sorted(read) == sorted(int(x) for x in table.lines)


def _check(path: Path, kind: str, starts: list[int] | None) -> None:
    canonical, names = (
        (LEDGER_COLUMNS, HEADER_NAMES) if kind == "ledger" else (INVOICE_COLUMNS, ("model_name",))
    )
    try:
        book = (load_ledger if kind == "ledger" else load_invoice)(path, RULES, SH)
    except InputError:
        return
    table = read_table(path, is_header=header_matcher({}, canonical, names))
    _accounted(path, table)
    _partitioned(table, book)
    if starts is not None and table.header_line == 1:
        # Each row written is a record of its own: no quote swallows the rows after it.
        lines = {int(x) for x in table.lines}
        assert lines <= set(starts)
        for missing in sorted(set(starts) - lines):
            assert missing in _blank_lines(path, table), f"row on line {missing} was swallowed"


def _blank_lines(path: Path, table: CsvTable) -> set[int]:
    text = path.read_bytes().decode(table.encoding)
    return {
        n
        for n, content in enumerate(text.replace("\r\n", "\n").split("\n"), start=1)
        if not content.strip(' ,;\t|\r"')
    }


@FUZZ
@given(data=_file(["log_id", "created_at", "type", "model_name", "quota"]))
def test_ledger_reader_never_crashes_and_loses_no_row(
    tmp_path: Path, data: tuple[bytes, list[int] | None]
) -> None:
    path = tmp_path / "ledger.csv"
    path.write_bytes(data[0])
    _check(path, "ledger", data[1])


@FUZZ
@given(data=_file(["created_at", "type", "request_id", "amount", "currency"]))
def test_ledger_without_log_ids_never_crashes_and_loses_no_row(
    tmp_path: Path, data: tuple[bytes, list[int] | None]
) -> None:
    path = tmp_path / "ledger.csv"
    path.write_bytes(data[0])
    _check(path, "ledger", data[1])


@FUZZ
@given(data=_file(["model_name", "amount", "currency"]))
def test_invoice_reader_never_crashes_and_loses_no_row(
    tmp_path: Path, data: tuple[bytes, list[int] | None]
) -> None:
    path = tmp_path / "invoice.csv"
    path.write_bytes(data[0])
    _check(path, "invoice", data[1])
