"""Reading a TOML rules text: where each key is (tomllib keeps no positions) and the checks
that turn a bad value into one InputError naming the file, the line and the field."""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
import tomllib
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from reconcile.errors import InputError

MAX_NUMBER: Final = Decimal(1_000_000)
MAX_QUOTA_PER_UNIT: Final = Decimal(10**12)
_CURRENCY_CODE = re.compile(r"^[A-Za-z]{3}$")
_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")
_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_KEY_LINE = re.compile(rf"^\s*(?P<key>{_DOTTED})\s*=")
_ARRAY_HEADER = re.compile(rf"^\s*\[\[\s*(?P<name>{_DOTTED})\s*\]\]")
_TABLE_HEADER = re.compile(rf"^\s*\[\s*(?P<name>{_DOTTED})\s*\]")


def _parts(dotted: str) -> tuple[str, ...]:
    out: list[str] = []
    for m in re.finditer(_PART, dotted):
        part = m.group(0)
        if part.startswith('"'):
            try:
                part = str(json.loads(part))
            except ValueError:
                part = part[1:-1]
        elif part.startswith("'"):
            part = part[1:-1]
        out.append(part)
    return tuple(out)


class _Lines:
    """Where each table and key of a TOML text is: tomllib keeps no positions, so scan.

    Paths: ("model", 2) is the third `[[model]]` header; ("model", 2, "model_ratio") its key.
    Approximate by design (a line scanner, not a parser), but tomllib has already accepted
    the text, so the shapes it meets are the ordinary ones.
    """

    def __init__(self, text: str) -> None:
        self.paths: dict[tuple[Any, ...], int] = {}
        self.keys: dict[int, str] = {}
        table: tuple[Any, ...] = ()
        counts: dict[tuple[str, ...], int] = {}
        open_quote: str | None = None
        for no, raw in enumerate(text.splitlines(), start=1):
            if open_quote is not None:
                if open_quote in raw:
                    open_quote = None
                continue
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                continue
            m = _ARRAY_HEADER.match(stripped)
            if m:
                name = _parts(m.group("name"))
                index = counts.get(name, 0)
                counts[name] = index + 1
                table = (*name, index)
                self.paths.setdefault(table, no)
                continue
            m = _TABLE_HEADER.match(stripped)
            if m:
                table = _parts(m.group("name"))
                self.paths.setdefault(table, no)
                continue
            m = _KEY_LINE.match(stripped)
            if m:
                key = _parts(m.group("key"))
                self.paths.setdefault((*table, *key), no)
                self.keys[no] = ".".join(key)
                rest = stripped[m.end() :].lstrip()
                for quote in ('"""', "'''"):
                    if rest.startswith(quote) and rest.count(quote) == 1:
                        open_quote = quote

    def of(self, *path: Any) -> int | None:
        """The line of `path`, or of its nearest enclosing table when the key is absent."""
        for end in range(len(path), 0, -1):
            line = self.paths.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


class _Checker:
    """Validates the decoded TOML, raising the first problem with its line."""

    def __init__(self, path: Path, lines: _Lines) -> None:
        self.path = path
        self.lines = lines

    def fail(self, message: str, where: tuple[Any, ...], field: str) -> InputError:
        return InputError(message, file=self.path, line=self.lines.of(*where), field=field)

    def unknown(
        self, table: Mapping[str, Any], known: tuple[str, ...], where: tuple[Any, ...], label: str
    ) -> None:
        for key in table:
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                tip = f" (did you mean {hint[0]!r}?)" if hint else f" (known: {', '.join(known)})"
                field = f"{label}.{key}" if label else key
                raise self.fail(f"unknown key {key!r}{tip}", (*where, key), field)

    def number(
        self,
        value: Any,
        where: tuple[Any, ...],
        field: str,
        *,
        positive: bool = False,
        context: str = "",
        maximum: Decimal = MAX_NUMBER,
    ) -> Decimal:
        """An exact, finite, non-negative (or positive) number: int or TOML float.

        Numbers past `maximum` are refused as typos: no contract has a ratio of a million.
        """
        suffix = f" {context}" if context else ""
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            shown = f"{value!r}" if isinstance(value, str) else type(value).__name__
            raise self.fail(f"must be a number, not {shown}{suffix}", where, field)
        d = Decimal(value)
        if not d.is_finite():
            raise self.fail(f"must be a finite number, not {value}{suffix}", where, field)
        if d < 0 or (positive and d == 0):
            bound = "> 0" if positive else ">= 0"
            raise self.fail(f"must be {bound}, not {plain(d)}{suffix}", where, field)
        if d > maximum:
            raise self.fail(
                f"{plain(d)} is implausibly large (at most {plain(maximum)}){suffix}", where, field
            )
        return d + 0  # normalises -0.0 to 0

    def day(self, value: Any, where: tuple[Any, ...], field: str, context: str) -> date:
        if isinstance(value, datetime):
            raise self.fail(
                f"must be a date like 2026-10-15, not a date-time {context}", where, field
            )
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise self.fail(f"must be a date like 2026-10-15, not {value!r} {context}", where, field)

    def table(self, value: Any, where: tuple[Any, ...], field: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(
                f"must be a table ([{field}]), not {type(value).__name__}", where, field
            )
        return value


def glob_problem(pattern: str) -> str | None:
    """Why `pattern` is not a usable glob, or None. fnmatch would silently take an
    unbalanced `[` literally, which hides a typo, so it is refused here."""
    if not pattern.strip():
        return "is empty"
    if pattern != pattern.strip():
        return "has leading or trailing spaces"
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            close = pattern.find("]", j)
            if close < 0:
                return f"has an unbalanced '[' at position {i}"
            if close == i or (close == i + 1 and pattern[i] == "!"):
                return f"has an empty character set at position {i}"
            i = close + 1
        elif c == "]":
            return f"has a ']' without '[' at position {i}"
    try:
        re.compile(fnmatch.translate(pattern))
    except re.error as exc:
        return f"is not a valid glob ({exc})"
    return None


def plain(d: Decimal) -> str:
    """A decimal as plain text without exponent or trailing zeros: 1.25, 100, 0.0001."""
    return format(d.normalize(), "f")


def _syntax_error(exc: tomllib.TOMLDecodeError, text: str, path: Path) -> InputError:
    message = str(exc)
    line: int | None = None
    column = ""
    m = _TOML_WHERE.search(message)
    if m:
        line, column = int(m.group(1)), m.group(2)
        message = message[: m.start()]
    elif _TOML_END.search(message):
        line = max(1, len(text.splitlines()))
        message = _TOML_END.sub("", message) + " at the end of the file"
    field = _Lines(text).keys.get(line) if line is not None else None
    col = f" (column {column})" if column else ""
    return InputError(f"not valid TOML: {message}{col}", file=path, line=line, field=field)
