"""A small streaming layer over openpyxl: safe cells, shared styles, capped tables, fixed bytes.

Why not plain `ws.append`: openpyxl turns any string starting with `=` into a formula and a
string like `#N/A` into an error value; data from the gateway or a CSV must stay text. And
the workbook must be byte-identical for identical inputs, which needs fixed document
timestamps and fixed zip entry dates (zipfile stamps entries with the current time).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, cast

import pandas as pd
from openpyxl import Workbook
from openpyxl.cell.cell import ERROR_CODES, Cell
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.styles.cell_style import StyleArray
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.writer.excel import ExcelWriter

from reconcile.report.safe import cell_text
from reconcile.report.stamped_zip import StampedZip

_NA: Final = pd.NA

#: Excel's rows per sheet. A module constant so tests can lower it; read at write time.
SHEET_ROW_LIMIT: int = 1_048_576
#: Rows above a table's data: the header row only, so `pandas.read_excel(path, sheet)` reads
#: every table as it is; a table's caption is printed in the page header and listed on the
#: Summary sheet instead of sitting above the header.
HEAD_ROWS: Final = 1
MAX_WIDTH: Final = 60.0

# Negative numbers (differences) in red, so a reviewer's eye goes to them. Money shows two
# decimals (four on single findings, whose differences are often fractions of a cent) and
# the currency; the cell holds the exact value, which the formula bar shows.
AMOUNT_FORMAT: Final = "#,##0.00;[Red]-#,##0.00"
INT_FORMAT: Final = "#,##0;[Red]-#,##0"
DATETIME_FORMAT: Final = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT: Final = "yyyy-mm-dd"


def money_format(currency: str, places: int = 2) -> str:
    """`#,##0.00 "USD"` with negatives in red: the amount's currency beside every figure."""
    frac = "." + "0" * places if places else ""
    unit = f' "{currency}"' if currency.isalpha() else ""
    return f"#,##0{frac}{unit};[Red]-#,##0{frac}{unit}"


_THIN = Side(style="thin", color="A6A6A6")
FONT_NAME: Final = "Calibri"


def _font(**kw: Any) -> Font:
    """A font with the name and size given, so every program draws the same face."""
    kw.setdefault("size", 11)
    return Font(name=FONT_NAME, **kw)


_HEADER_FILL = PatternFill("solid", fgColor="1F4E78")

#: Every style the report uses, by name. A cell gets a copy of the style's prepared array.
STYLES: Final[dict[str, dict[str, Any]]] = {
    "title": {"font": _font(bold=True, size=14, color="1F4E78")},
    "note": {"font": _font(italic=True, color="595959")},
    "alert": {"font": _font(bold=True, color="C00000")},
    "label": {"font": _font(bold=True), "alignment": Alignment(vertical="center")},
    "section": {"font": _font(bold=True, size=12, color="1F4E78")},
    "header": {
        "font": _font(bold=True, color="FFFFFF"),
        "fill": _HEADER_FILL,
        "alignment": Alignment(horizontal="center", vertical="center", wrap_text=True),
        "border": Border(bottom=_THIN),
    },
    "int": {"number_format": INT_FORMAT},
    "int_bold": {"number_format": INT_FORMAT, "font": _font(bold=True)},
    "amount": {"number_format": AMOUNT_FORMAT},
    "amount_fine": {"number_format": AMOUNT_FORMAT},
    "amount_bold": {"number_format": AMOUNT_FORMAT, "font": _font(bold=True)},
    "total_label": {"font": _font(bold=True), "border": Border(top=_THIN)},
    "total_int": {
        "number_format": INT_FORMAT,
        "font": _font(bold=True),
        "border": Border(top=_THIN),
    },
    "total_amount": {
        "number_format": AMOUNT_FORMAT,
        "font": _font(bold=True),
        "border": Border(top=_THIN),
    },
    "datetime": {"number_format": DATETIME_FORMAT},
    "date": {"number_format": DATE_FORMAT},
    "link": {"font": _font(color="0563C1", underline="single")},
    "wrap": {"alignment": Alignment(wrap_text=True, vertical="top")},
    "indent": {"alignment": Alignment(horizontal="left", vertical="center", indent=1)},
    "pass": {
        "font": _font(bold=True, size=16, color="FFFFFF"),
        "fill": PatternFill("solid", fgColor="2E7D32"),
        "alignment": Alignment(horizontal="center", vertical="center"),
    },
    "fail": {
        "font": _font(bold=True, size=16, color="FFFFFF"),
        "fill": PatternFill("solid", fgColor="C62828"),
        "alignment": Alignment(horizontal="center", vertical="center"),
    },
    "neutral": {
        "font": _font(bold=True, size=16, color="FFFFFF"),
        "fill": PatternFill("solid", fgColor="7F7F7F"),
        "alignment": Alignment(horizontal="center", vertical="center"),
    },
    # Severity, in Excel's own "Bad" / "Neutral" / note colours.
    "sev_error": {"font": _font(color="9C0006"), "fill": PatternFill("solid", fgColor="FFC7CE")},
    "sev_warning": {"font": _font(color="9C5700"), "fill": PatternFill("solid", fgColor="FFEB9C")},
    "sev_info": {"font": _font(color="1F4E78"), "fill": PatternFill("solid", fgColor="DDEBF7")},
}


SEVERITY_STYLES: Final = {"error": "sev_error", "warning": "sev_warning", "info": "sev_info"}


@dataclass(frozen=True)
class Column:
    """One column of a table sheet. `kind` picks the cell style and the value conversion."""

    header: str
    kind: str = "text"  # text|wrap|int|id|amount|amount_fine|datetime|date|number|severity
    width: float | None = None  # None: fit the header and the data

    @property
    def style(self) -> str | None:
        return _KIND_STYLE.get(self.kind)


_KIND_STYLE: Final[dict[str, str]] = {
    "int": "int",
    "amount": "amount",
    "amount_fine": "amount_fine",
    "datetime": "datetime",
    "date": "date",
    "wrap": "wrap",
}


def local_datetime(text: str) -> datetime | str:
    """An ISO 8601 time as the wall-clock time Excel shows (Excel has no time zones)."""
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        return text


class Book:
    """A write-only workbook whose cells are safe and whose saved bytes are reproducible."""

    def __init__(self, fixed_time: datetime, title: str = "", currency: str = "") -> None:
        self.wb = Workbook(write_only=True)
        self.currency = currency
        #: Each table sheet's caption, in sheet order, for the Summary's list of sheets.
        self.captions: dict[str, str] = {}
        stamp = fixed_time.astimezone(UTC).replace(tzinfo=None, microsecond=0)
        self.stamp = max(stamp, datetime(1980, 1, 1))
        props = self.wb.properties
        props.created = props.modified = self.stamp
        props.creator = props.lastModifiedBy = "reconcile"
        props.title = title
        self._styles: dict[str, StyleArray] = {}
        self.notes: list[str] = []  # capped sheets, for the Summary's warnings
        #: Sheet title -> `<row>` XML to splice into that sheet's data when saving (fastrows).
        self.splices: dict[str, Iterator[str]] = {}

    def sheet(self, title: str) -> Any:
        return self.wb.create_sheet(title)

    def _style(self, ws: Any, name: str) -> StyleArray:
        array = self._styles.get(name)
        if array is None:
            proto = Cell(ws, row=1, column=1)
            for attr, value in STYLES[name].items():
                setattr(proto, attr, value)
            if name.startswith(("amount", "total_amount")):
                places = 4 if name == "amount_fine" else 2
                proto.number_format = money_format(self.currency, places)
            array = self._styles[name] = proto._style
        return array

    def cell(self, ws: Any, value: object, style: str | None = None) -> object:
        """A value ready for `ws.append`: text stays text, styles are shared, NA is empty."""
        if value is None or value is _NA:
            return None  # an empty cell needs no style: it shows nothing either way
        if isinstance(value, str):
            value = cell_text(value)
            forced = (len(value) > 1 and value[0] == "=") or value in ERROR_CODES
            if not forced and style is None:
                return value
            c = Cell(ws, 1, 1, value, self._style(ws, style) if style else None)
            c.data_type = "s"  # never a formula, never an error value
            return c
        if style is None:
            return value
        return Cell(ws, 1, 1, value, self._style(ws, style))

    def link(self, ws: Any, text: str, sheet: str, cell: str = "A1") -> Cell:
        """A cell that jumps to another sheet of this workbook (a location, not a formula)."""
        c = self.cell(ws, text, "link")
        assert isinstance(c, Cell)
        c.hyperlink = Hyperlink(ref="A1", location=f"{quote_sheet(sheet)}!{cell}", display=text)
        return c

    def save(self, path: Path) -> None:
        """Save with fixed document and zip entry dates, so equal inputs give equal bytes."""
        props = self.wb.properties
        props.created = props.modified = self.stamp
        # openpyxl names a sheet's part by its position: xl/worksheets/sheet<N>.xml
        splices = {
            f"xl/worksheets/sheet{i}.xml": self.splices[ws.title]
            for i, ws in enumerate(self.wb.worksheets, 1)
            if ws.title in self.splices
        }
        with StampedZip(Path(path), self.stamp, splices) as archive:
            ExcelWriter(self.wb, archive).save()


def quote_sheet(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


# ---------------------------------------------------------------- tables


def fit_width(header: str, longest: int, minimum: float = 8.0) -> float:
    """A column width (in characters) that shows the values and the header in two lines."""
    word = max((len(w) for w in header.split()), default=0)
    two_lines = (len(header) + 1) // 2 + 3
    return float(min(MAX_WIDTH, max(minimum, word + 2, two_lines, longest + 2)))


def text_width(values: Iterable[object]) -> int:
    return max((len(str(v)) for v in values if v is not None and v is not _NA), default=0)


def print_setup(ws: Any, grid: bool = True, caption: str = "") -> None:
    """Print a sheet landscape on A4, one page wide (as many pages tall as it needs), with
    the sheet's name and caption in the page header and page numbers in the footer."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = 9  # A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.gridLines = grid
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.6
    ws.oddHeader.left.text = "&A"
    if caption:
        ws.oddHeader.center.text = caption.replace("&", "&&")[:200]
        ws.oddHeader.center.size = 8
    ws.oddFooter.right.text = "Page &P of &N"


def set_widths(ws: Any, widths: Sequence[float]) -> None:
    for i, width in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(i)].width = width


@dataclass(frozen=True)
class Table:
    """What `write_table` reports back: where the data went and whether it was capped."""

    first_row: int
    last_row: int
    shown: int
    total: int

    @property
    def capped(self) -> bool:
        return self.shown < self.total


def rows_fit(total: int) -> int:
    """Data rows a table of `total` rows shows: all, or what fits with a closing note."""
    room = SHEET_ROW_LIMIT - HEAD_ROWS
    return total if total <= room else max(room - 1, 0)


def write_table(
    book: Book,
    ws: Any,
    title: str,
    columns: Sequence[Column],
    rows: Iterable[Sequence[object]],
    total: int,
    *,
    widths: Sequence[float],
    elsewhere: str,
    grid: bool = True,
    freeze: str = "A2",
    totals: Sequence[object] | None = None,
) -> Table:
    """Stream a table whose header is row 1: frozen header (and `freeze`'s columns),
    autofilter, a bold totals row under the data if given, capped at the sheet row limit.

    `title` is the table's caption: printed in the page header and listed on the Summary.
    `elsewhere` says where the rows a capped sheet leaves out can be found; the cap note
    goes into the Summary's warnings and under the last row.
    """
    shown = rows_fit(total if totals is None else total + 1)
    shown = min(shown, total)
    set_widths(ws, widths)
    print_setup(ws, grid=grid, caption=title)
    ws.freeze_panes = freeze
    ws.print_title_rows = "1:1"
    ws.row_dimensions[HEAD_ROWS].height = 32
    book.captions[ws.title] = title
    note = ""
    if shown < total:
        note = (
            f"Showing the first {shown:,} of {total:,} rows: a sheet holds at most "
            f"{SHEET_ROW_LIMIT:,} rows. {elsewhere}"
        )
        book.notes.append(f"Sheet '{ws.title}' is capped: {note}")
    ws.append([book.cell(ws, c.header, "header") for c in columns])
    styles = [c.style for c in columns]
    kinds = [c.kind for c in columns]
    written = 0
    for row in rows:
        if written >= shown:
            break
        cells = []
        for i, value in enumerate(row):
            style = styles[i]
            kind = kinds[i]
            if kind == "datetime" and isinstance(value, str):
                value = local_datetime(value)
            elif kind == "severity" and value in SEVERITY_STYLES:
                style = SEVERITY_STYLES[value]
            cells.append(book.cell(ws, value, style))
        ws.append(cells)
        written += 1
    last = HEAD_ROWS + written
    if totals is not None:
        ws.append(
            [
                book.cell(ws, v, _TOTAL_STYLE.get(c.kind, "total_label"))
                for v, c in zip(totals, columns, strict=False)
            ]
        )
    if note:
        ws.append([book.cell(ws, note, "alert")])
    ws.auto_filter.ref = f"A{HEAD_ROWS}:{get_column_letter(len(columns))}{last}"
    return Table(HEAD_ROWS + 1, last, written, total)


_TOTAL_STYLE: Final = {"int": "total_int", "amount": "total_amount", "amount_fine": "total_amount"}


def py_values(series: pd.Series) -> list[object]:
    """A column as Python values: ints, strs, Decimals; None where the value is missing."""
    values: list[object] = cast(Any, series).to_numpy(dtype=object, na_value=None).tolist()
    return values


def plain(value: object) -> object:
    """Turn numpy / pandas scalars into Python values openpyxl knows; dates stay dates."""
    if value is None or value is _NA:
        return None
    if isinstance(value, (str, int, float, Decimal, datetime, date)):
        return value
    item = getattr(value, "item", None)
    return item() if callable(item) else value
