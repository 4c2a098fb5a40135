"""Decoding a CSV file's bytes to UTF-8, naming the encoding it was read as.

A declared encoding wins; else UTF-8 (with or without BOM), UTF-16 with a BOM (Excel's
"Unicode text"), UTF-16 without a BOM when its zero bytes say so (some exporters drop the
BOM: ASCII text then has a zero byte in every other position), and GB18030 (a superset of
GBK/GB2312) when the bytes are not UTF-8 at all. A UTF-8 file with a few corrupt bytes is an
error, not silently re-read as GBK.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from reconcile.errors import InputError

_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0"


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
        utf16 = _utf16_without_bom(raw)
        if utf16 is None:
            raise InputError(
                "binary data, not CSV text (nor UTF-16: set `encoding` if it is text)", file=path
            )
        return utf16
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


_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")


def _utf16_without_bom(raw: bytes) -> tuple[bytes, str] | None:
    """UTF-16 text whose BOM was dropped, told by its zero bytes, as UTF-8; else None.

    Mostly-ASCII text in UTF-16 has a zero byte in every other position: the high bytes,
    at odd offsets for little-endian and even ones for big-endian. The decoded text must
    hold no control characters besides tab and line ends, or the file is binary after all.
    """
    head = raw[:4096]
    even, odd = head[0::2].count(0), head[1::2].count(0)
    pairs = len(head) // 2
    if not pairs or len(raw) % 2:
        return None
    for name, high, low in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if high >= pairs // 4 and low * 20 <= high:
            try:
                text = raw.decode(name)
            except UnicodeDecodeError:
                return None
            if _CONTROL.search(text):
                return None
            return text.encode("utf-8"), name
    return None
