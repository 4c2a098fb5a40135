"""Text from the gateway or a CSV, made safe for spreadsheets, CSV readers and XML.

A token or model name is data, never an instruction: a spreadsheet program must show
`=HYPERLINK(...)` as the text it is, not run it. Each output format needs its own defence.
"""

from __future__ import annotations

import re
from typing import Final

#: Leading characters that make Excel, LibreOffice or Google Sheets read a CSV cell as a
#: formula (OWASP "CSV injection"), including the full-width forms some locales accept.
FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")

#: Excel's limit on the characters in one cell.
CELL_CHARS: Final = 32_767
TRUNCATED: Final = " … [truncated]"

# Control characters that XML 1.0 (and so xlsx and JUnit XML) cannot hold at all.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def csv_text(text: str) -> str:
    """Prefix text that a spreadsheet would read as a formula with `'`, so it stays text."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def xml_text(text: str) -> str:
    """Replace characters XML cannot carry with U+FFFD, visibly, instead of failing the run."""
    return _XML_ILLEGAL.sub("\ufffd", text)


def cell_text(text: str) -> str:
    """Text an xlsx cell can hold: XML-safe and within Excel's 32,767 characters."""
    text = xml_text(text)
    if len(text) > CELL_CHARS:
        text = text[: CELL_CHARS - len(TRUNCATED)] + TRUNCATED
    return text
