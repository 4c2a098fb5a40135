"""The pricing contract: a TOML rules file validated into typed, exact-decimal rules.

Numbers are read from the text as written (tomllib with ``parse_float=Decimal``), so a ratio
written ``1.25`` is exactly 1.25 and never the nearest binary float. Every problem is one
InputError naming the file, the line and the field, because a finance user fixes rules files
by hand and needs to be told where.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconcile.errors import InputError

#: new-api's defaults for a model that does not configure them (setting/ratio_setting).
DEFAULT_COMPLETION_RATIO: Final = Decimal(1)
DEFAULT_CACHE_RATIO: Final = Decimal(1)
DEFAULT_CACHE_CREATION_RATIO: Final = Decimal("1.25")
#: Anthropic's 1-hour cache write costs 6/3.75 of the 5-minute one; new-api hard-codes it.
CACHE_CREATION_1H_MULTIPLIER: Final = Decimal("1.6")


class Tolerance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quota: int = Field(default=1, ge=0)
    relative: Decimal = Field(default=Decimal(0), ge=0)
    #: Ledger rows without ids pair with a log stamped up to this many seconds after the
    #: row's time (the books' clock is the client's, which runs a little ahead of the log).
    seconds: int = Field(default=5, ge=0, le=86400)

    def allows(self, charged: int, expected: int) -> bool:
        """Within tolerance: |diff| <= quota, or <= relative x the larger amount (exact)."""
        diff = abs(charged - expected)
        if diff <= self.quota:
            return True
        return Decimal(diff) <= self.relative * max(abs(charged), abs(expected))


class ModelRule(BaseModel):
    """One `[[model]]` table: how a model (exact name or glob) is priced, and since when."""

    model_config = ConfigDict(extra="forbid")
    match: str
    model_ratio: Decimal | None = Field(default=None, ge=0)
    completion_ratio: Decimal = Field(default=DEFAULT_COMPLETION_RATIO, ge=0)
    cache_ratio: Decimal = Field(default=DEFAULT_CACHE_RATIO, ge=0)
    cache_creation_ratio: Decimal = Field(default=DEFAULT_CACHE_CREATION_RATIO, ge=0)
    #: Anthropic 1-hour cache writes; unset means cache_creation_ratio x 1.6, as new-api does.
    cache_creation_ratio_1h: Decimal | None = Field(default=None, ge=0)
    #: Image input tokens; unset means a log with image tokens cannot be re-priced.
    image_ratio: Decimal | None = Field(default=None, ge=0)
    model_price: Decimal | None = Field(default=None, ge=0)
    effective_from: date | None = None
    effective_to: date | None = None
    line: int = 0  # line of the `[[model]]` header in the file, for messages

    @property
    def is_glob(self) -> bool:
        return any(c in self.match for c in "*?[")

    @property
    def kind(self) -> str:
        return "glob" if self.is_glob else "exact"

    @property
    def per_call(self) -> bool:
        return self.model_price is not None

    @property
    def creation_ratio_1h(self) -> Decimal:
        if self.cache_creation_ratio_1h is not None:
            return self.cache_creation_ratio_1h
        return self.cache_creation_ratio * CACHE_CREATION_1H_MULTIPLIER

    def matches(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.match) if self.is_glob else model == self.match

    def bounds(self, tz: ZoneInfo) -> tuple[int | None, int | None]:
        """[from, to) in unix seconds: local midnight of the dates in `tz` (None = open)."""
        return _midnight(self.effective_from, tz), _midnight(self.effective_to, tz)

    def in_effect(self, ts: int, tz: ZoneInfo) -> bool:
        start, end = self.bounds(tz)
        return (start is None or ts >= start) and (end is None or ts < end)

    def precedence(self) -> tuple[int, int]:
        """Sort key, best first: an exact name, then longer globs before shorter ones."""
        return (0 if not self.is_glob else 1, -len(self.match))

    def describe_dates(self) -> str:
        start = self.effective_from.isoformat() if self.effective_from else "the start"
        end = self.effective_to.isoformat() if self.effective_to else "open end"
        if self.effective_from is None and self.effective_to is None:
            return "always"
        return f"{start} to {end}"


class ColumnMap(BaseModel):
    """Renames a CSV's columns to canonical names: `"Their Column" = "canonical_name"`."""

    model_config = ConfigDict(extra="forbid")
    columns: dict[str, str] = Field(default_factory=dict)
    #: How to read the file where it does not say itself (a ledger profile can set these too).
    currency: str | None = None  # currency of amounts with no currency column or symbol
    encoding: str | None = None  # e.g. "gbk"; default: UTF-8 (BOM or not), else GB18030
    delimiter: str | None = None  # "," ";" "tab" "|"; default: sniffed from the header row
    decimal: Literal[".", ","] | None = None  # default: detected from the amounts
    date_format: str | None = None  # strptime format for dates that are not ISO 8601


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    quota_per_unit: Decimal = Field(default=Decimal(500000), gt=0)
    report_currency: str = "USD"
    currency: dict[str, Decimal] = Field(default_factory=dict)
    tolerance: Tolerance = Field(default_factory=Tolerance)
    groups: dict[str, Decimal] = Field(default_factory=dict)
    models: list[ModelRule] = Field(default_factory=list, alias="model")
    ledger: ColumnMap = Field(default_factory=ColumnMap)
    invoice: ColumnMap = Field(default_factory=ColumnMap)
    path: str = ""
    sha256: str = ""

    def rate(self, currency: str) -> Decimal:
        """Units of `currency` per 1 USD; InputError when the rules do not define it."""
        code = currency.strip().upper()
        if code == "USD":
            return Decimal(1)
        if code not in self.currency:
            raise InputError(f"no exchange rate for {currency!r} in the rules' [currency]")
        return self.currency[code]

    def group_ratio(self, group: str) -> Decimal:
        return self.groups.get(group, Decimal(1))

    def candidates(self, model: str) -> list[ModelRule]:
        """The rules whose pattern matches `model`, best pattern first (file order on ties)."""
        found = [r for r in self.models if r.matches(model)]
        return sorted(found, key=ModelRule.precedence)

    def rule_for(self, model: str, ts: int, tz: ZoneInfo) -> ModelRule | None:
        """The rule that prices `model` at unix time `ts`: the best pattern in effect then."""
        for rule in self.candidates(model):
            if rule.in_effect(ts, tz):
                return rule
        return None


def _midnight(day: date | None, tz: ZoneInfo) -> int | None:
    if day is None:
        return None
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


# --------------------------------------------------------------------------- loading

TOP_KEYS: Final = (
    "quota_per_unit",
    "report_currency",
    "currency",
    "tolerance",
    "groups",
    "model",
    "ledger",
    "invoice",
)
TOLERANCE_KEYS: Final = ("quota", "relative", "seconds")
RATIO_KEYS: Final = (
    "model_ratio",
    "completion_ratio",
    "cache_ratio",
    "cache_creation_ratio",
    "cache_creation_ratio_1h",
    "image_ratio",
)
MODEL_KEYS: Final = (
    "match",
    *RATIO_KEYS,
    "model_price",
    "effective_from",
    "effective_to",
)
#: Keys that only make sense for token pricing; a per-call rule must not carry them.
TOKEN_ONLY_KEYS: Final = tuple(k for k in RATIO_KEYS if k != "model_ratio")
#: Upper bounds that catch typos (a ratio of 1e6 is $2,000 per 1K tokens).
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


def _validate_model(ck: _Checker, raw: Any, index: int) -> ModelRule:
    where: tuple[Any, ...] = ("model", index)
    if not isinstance(raw, dict):
        raise ck.fail("each [[model]] must be a table", where, "model")
    ck.unknown(raw, MODEL_KEYS, where, "")
    if "match" not in raw:
        raise ck.fail('a [[model]] needs match = "model name or glob"', where, "match")
    match = raw["match"]
    if not isinstance(match, str):
        raise ck.fail(f"must be a string, not {type(match).__name__}", (*where, "match"), "match")
    problem = glob_problem(match)
    if problem:
        raise ck.fail(f"{match!r} {problem}", (*where, "match"), "match")
    ctx = f"(in [[model]] match = {match!r})"
    values: dict[str, Any] = {"match": match}
    for key in (*RATIO_KEYS, "model_price"):
        if key in raw:
            values[key] = ck.number(raw[key], (*where, key), key, context=ctx)
    if "model_ratio" in values and "model_price" in values:
        raise ck.fail(
            f"give model_ratio (per token) or model_price (per call), not both {ctx}",
            (*where, "model_price"),
            "model_price",
        )
    if "model_ratio" not in values and "model_price" not in values:
        raise ck.fail(
            f"needs model_ratio (per token) or model_price (USD per call) {ctx}",
            where,
            "model_ratio",
        )
    if "model_price" in values:
        for key in TOKEN_ONLY_KEYS:
            if key in values:
                raise ck.fail(
                    f"{key} applies to token pricing only; this rule has "
                    f"model_price (per call) {ctx}",
                    (*where, key),
                    key,
                )
    for key in ("effective_from", "effective_to"):
        if key in raw:
            values[key] = ck.day(raw[key], (*where, key), key, ctx)
    start, end = values.get("effective_from"), values.get("effective_to")
    if start is not None and end is not None and end <= start:
        raise ck.fail(
            f"{end.isoformat()} is not after effective_from {start.isoformat()} "
            f"(effective_to is exclusive) {ctx}",
            (*where, "effective_to"),
            "effective_to",
        )
    line = ck.lines.of(*where) or 0
    return ModelRule(**values, line=line)


def _check_overlaps(ck: _Checker, models: list[ModelRule]) -> None:
    """Two rules for the same pattern must not both be in effect on any day."""
    by_pattern: dict[str, list[tuple[int, ModelRule]]] = {}
    for i, rule in enumerate(models):
        by_pattern.setdefault(rule.match, []).append((i, rule))
    for pattern, group in by_pattern.items():
        ordered = sorted(group, key=lambda ir: (ir[1].effective_from or date.min, ir[0]))
        for (_, prev), (i, cur) in pairwise(ordered):
            prev_end = prev.effective_to or date.max
            cur_start = cur.effective_from or date.min
            if cur_start < prev_end:
                raise ck.fail(
                    f"the rule for {pattern!r} ({cur.describe_dates()}) overlaps the one at "
                    f"line {prev.line} ({prev.describe_dates()}); give each rule of a pattern "
                    "its own effective_from / effective_to",
                    ("model", i, "effective_from"),
                    "effective_from",
                )


def _column_map(ck: _Checker, raw: Any, name: str) -> ColumnMap:
    table = ck.table(raw, (name,), name)
    try:
        return ColumnMap.model_validate(table)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(str(x) for x in err["loc"])
        raise ck.fail(err["msg"], (name, *loc), ".".join((name, *loc))) from None


def parse_rules(text: str, path: str | Path = "<rules>") -> Rules:
    """Validate rules from TOML text; `path` is only used in messages."""
    p = Path(path)
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(exc, text, p) from None
    lines = _Lines(text)
    ck = _Checker(p, lines)
    ck.unknown(data, TOP_KEYS, (), "")
    out: dict[str, Any] = {}
    if "quota_per_unit" in data:
        out["quota_per_unit"] = ck.number(
            data["quota_per_unit"],
            ("quota_per_unit",),
            "quota_per_unit",
            positive=True,
            maximum=MAX_QUOTA_PER_UNIT,
        )
    if "report_currency" in data:
        code = data["report_currency"]
        if not isinstance(code, str) or not _CURRENCY_CODE.match(code.strip()):
            raise ck.fail(
                f'must be a currency code like "USD" or "CNY", not {code!r}',
                ("report_currency",),
                "report_currency",
            )
        out["report_currency"] = code.strip().upper()
    if "currency" in data:
        rates: dict[str, Decimal] = {}
        for code, rate in ck.table(data["currency"], ("currency",), "currency").items():
            if not _CURRENCY_CODE.match(code):
                raise ck.fail(
                    f"{code!r} is not a currency code (three letters, e.g. CNY)",
                    ("currency", code),
                    f"currency.{code}",
                )
            rates[code.upper()] = ck.number(
                rate,
                ("currency", code),
                f"currency.{code}",
                positive=True,
                context="(units per 1 USD)",
            )
        out["currency"] = rates
    report = out.get("report_currency", "USD")
    if report != "USD" and report not in out.get("currency", {}):
        raise ck.fail(
            f"{report} has no exchange rate: add {report} = <units per 1 USD> under [currency]",
            ("report_currency",),
            "report_currency",
        )
    if "tolerance" in data:
        tol = ck.table(data["tolerance"], ("tolerance",), "tolerance")
        ck.unknown(tol, TOLERANCE_KEYS, ("tolerance",), "tolerance")
        values: dict[str, Any] = {}
        if "quota" in tol:
            q = ck.number(
                tol["quota"], ("tolerance", "quota"), "tolerance.quota", maximum=MAX_QUOTA_PER_UNIT
            )
            if q != q.to_integral_value():
                raise ck.fail(
                    f"must be a whole number of quota units, not {plain(q)}",
                    ("tolerance", "quota"),
                    "tolerance.quota",
                )
            values["quota"] = int(q)
        if "relative" in tol:
            r = ck.number(tol["relative"], ("tolerance", "relative"), "tolerance.relative")
            if r > 1:
                raise ck.fail(
                    f"is a fraction of the larger amount (0.01 = 1%), not {plain(r)}",
                    ("tolerance", "relative"),
                    "tolerance.relative",
                )
            values["relative"] = r
        if "seconds" in tol:
            sec = ck.number(
                tol["seconds"],
                ("tolerance", "seconds"),
                "tolerance.seconds",
                maximum=Decimal(86400),
            )
            if sec != sec.to_integral_value():
                raise ck.fail(
                    f"must be a whole number of seconds, not {plain(sec)}",
                    ("tolerance", "seconds"),
                    "tolerance.seconds",
                )
            values["seconds"] = int(sec)
        out["tolerance"] = Tolerance(**values)
    if "groups" in data:
        groups: dict[str, Decimal] = {}
        for name, ratio in ck.table(data["groups"], ("groups",), "groups").items():
            groups[name] = ck.number(
                ratio, ("groups", name), f"groups.{name}", context=f"(ratio of group {name!r})"
            )
        out["groups"] = groups
    if "model" in data:
        raw_models = data["model"]
        if not isinstance(raw_models, list):
            raise ck.fail("write each model as a [[model]] table", ("model",), "model")
        models = [_validate_model(ck, raw, i) for i, raw in enumerate(raw_models)]
        _check_overlaps(ck, models)
        out["models"] = models
    for name in ("ledger", "invoice"):
        if name in data:
            out[name] = _column_map(ck, data[name], name)
    try:
        return Rules.model_validate(out)
    except ValidationError as exc:  # a constraint the checks above did not anticipate
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        raise ck.fail(err["msg"], loc, ".".join(str(x) for x in loc)) from None


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


def load_rules(path: str | Path) -> Rules:
    """Read and validate a rules file; every problem is an InputError naming file and line."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read rules file: {exc.strerror}", file=p) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError("not UTF-8 text", file=p, line=line) from None
    rules = parse_rules(text, p)
    rules.path = str(p)
    rules.sha256 = hashlib.sha256(raw).hexdigest()
    return rules
