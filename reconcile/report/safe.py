"""Text from the gateway or a CSV, made safe for spreadsheets, CSV readers and XML.

A token or model name is data, never an instruction: a spreadsheet program must show
`=HYPERLINK(...)` as the text it is, not run it. One guard (`safe_text`) gives the text both
the CSV and the workbook hold, so the two files always agree on what a cell says:

- characters XML cannot carry (NUL and the other C0 controls but tab, CR, LF) become U+FFFD,
  visibly, in both files (a NUL in a CSV cuts the row short in some readers);
- text a spreadsheet would run as a formula, or read as an error value such as `#N/A`, gets a
  leading `'`, which is how Excel itself shows such text typed into a cell.
"""

from __future__ import annotations

import re
from typing import Final

#: Leading characters that make Excel, LibreOffice or Google Sheets read a CSV cell as a
#: formula (OWASP "CSV injection"), including the full-width forms some locales accept.
FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")

#: Text a spreadsheet turns into an error value instead of keeping it as text.
ERROR_LITERALS: Final = frozenset(
    {
        "#NULL!",
        "#DIV/0!",
        "#VALUE!",
        "#REF!",
        "#NAME?",
        "#NUM!",
        "#N/A",
        "#GETTING_DATA",
        "#SPILL!",
        "#CALC!",
        "#FIELD!",
        "#BLOCKED!",
        "#CONNECT!",
        "#BUSY!",
        "#UNKNOWN!",
        "#PYTHON!",
    }
)

#: Excel's limit on the characters in one cell.
CELL_CHARS: Final = 32_767
TRUNCATED: Final = " … [truncated]"

# Control characters that XML 1.0 (and so xlsx and JUnit XML) cannot hold at all.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(text: str) -> str:
    """Replace characters XML cannot carry with U+FFFD, visibly, instead of failing the run."""
    return _XML_ILLEGAL.sub("\ufffd", text)


def needs_quote(text: str) -> bool:
    """True when a spreadsheet would not keep `text` as the text it is."""
    if not text:
        return False
    stripped = text.lstrip(" ")
    return stripped.startswith(FORMULA_TRIGGERS) or stripped.upper() in ERROR_LITERALS


def safe_text(text: str) -> str:
    """The one text both the CSV and the workbook hold for a value from outside."""
    text = xml_text(text)
    return "'" + text if needs_quote(text) else text


def csv_text(text: str) -> str:
    """A CSV cell's text: `safe_text` (kept as a name for callers)."""
    return safe_text(text)


def cell_text(text: str) -> str:
    """An xlsx cell's text: `safe_text`, then cut to Excel's 32,767 characters."""
    text = safe_text(text)
    if len(text) > CELL_CHARS:
        text = text[: CELL_CHARS - len(TRUNCATED)] + TRUNCATED
    return text
