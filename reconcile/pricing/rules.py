"""The pricing contract: a TOML rules file validated into typed, exact-decimal rules.

Numbers are read from the text as written (tomllib with ``parse_float=Decimal``), so a ratio
written ``1.25`` is exactly 1.25 and never the nearest binary float. Every problem is one
InputError naming the file, the line and the field, because a finance user fixes rules files
by hand and needs to be told where.
"""

from __future__ import annotations

import fnmatch
import hashlib
import tomllib
from datetime import date, datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconcile.errors import InputError
from reconcile.pricing.rules_paths import (
    PATH_KEYS,
    Tier,
    group_pairs,
    overflow_problem,
    validate_path_keys,
)
from reconcile.pricing.rules_toml import (
    _CURRENCY_CODE,
    MAX_NUMBER,
    MAX_QUOTA_PER_UNIT,
    _Checker,
    _Lines,
    _syntax_error,
    glob_problem,
    plain,
)

__all__ = ["MAX_NUMBER", "ModelRule", "Rules", "Tolerance", "glob_problem", "load_rules", "plain"]

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
    #: Billing-path keys (reconcile.pricing.rules_paths): audio ratios, USD per 1,000 tool
    #: calls, USD per 1M separately priced audio input tokens, USD per image by size/quality,
    #: USD per second of a task, task multipliers by name and label, tiers by prompt size.
    audio_ratio: Decimal | None = None
    audio_completion_ratio: Decimal | None = None
    audio_input_price: Decimal | None = None
    tool_prices: dict[str, Decimal] = Field(default_factory=dict)
    image_prices: dict[str, Decimal] = Field(default_factory=dict)
    task_price_per_second: Decimal | None = None
    task_ratios: dict[str, dict[str, Decimal]] = Field(default_factory=dict)
    tiers: list[Tier] = Field(default_factory=list)
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
    #: (user group -> using group -> ratio): new-api's GroupGroupRatio, which wins over `groups`
    group_pairs: dict[str, dict[str, Decimal]] = Field(default_factory=dict)
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

    def pair_ratios(self, using_group: str) -> list[Decimal]:
        """The ratios the contract gives some user group when it uses `using_group`."""
        return [p[using_group] for p in self.group_pairs.values() if using_group in p]

    def all_group_ratios(self) -> list[Decimal]:
        return [*self.groups.values(), *(r for p in self.group_pairs.values() for r in p.values())]

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
    "group_pairs",
    "model",
    "ledger",
    "invoice",
)
TOLERANCE_KEYS: Final = ("quota", "relative")
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
    *PATH_KEYS,
    "effective_from",
    "effective_to",
)
#: Keys that only make sense for token pricing; a per-call rule must not carry them.
TOKEN_ONLY_KEYS: Final = tuple(k for k in RATIO_KEYS if k != "model_ratio")
#: Upper bounds that catch typos (a ratio of 1e6 is $2,000 per 1K tokens).


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
    values |= validate_path_keys(ck, raw, where, ctx, "model_price" in values)
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


def _check_overflow(ck: _Checker, models: list[ModelRule], out: dict[str, Any]) -> None:
    """A per-call price whose quota overflows int64 is refused here, not crashed on later."""
    qpu = out.get("quota_per_unit", Decimal(500000))
    ratios = [*out.get("groups", {}).values()]
    ratios += [r for p in out.get("group_pairs", {}).values() for r in p.values()]
    for i, rule in enumerate(models):
        if rule.model_price is None:
            continue
        prices = [rule.model_price, *rule.image_prices.values()]
        problem = overflow_problem(prices, qpu, ratios)
        if problem:
            raise ck.fail(
                f"{problem} (in [[model]] match = {rule.match!r})",
                ("model", i, "model_price"),
                "model_price",
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
        out["tolerance"] = Tolerance(**values)
    if "groups" in data:
        groups: dict[str, Decimal] = {}
        for name, ratio in ck.table(data["groups"], ("groups",), "groups").items():
            groups[name] = ck.number(
                ratio, ("groups", name), f"groups.{name}", context=f"(ratio of group {name!r})"
            )
        out["groups"] = groups
    if "group_pairs" in data:
        out["group_pairs"] = group_pairs(ck, data["group_pairs"])
    if "model" in data:
        raw_models = data["model"]
        if not isinstance(raw_models, list):
            raise ck.fail("write each model as a [[model]] table", ("model",), "model")
        models = [_validate_model(ck, raw, i) for i, raw in enumerate(raw_models)]
        _check_overlaps(ck, models)
        _check_overflow(ck, models, out)
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
