"""The contract in memory: typed, exact-decimal rules, what `load_rules` returns.

A rule prices a model (an exact name or a glob) from its effective dates; the contract adds
group ratios, (user group, using group) pairs, tolerance and currencies. Validation of a
file into these types lives in `reconcile.pricing.rules`.
"""

from __future__ import annotations

import fnmatch
from datetime import date, datetime
from decimal import Decimal
from typing import Final, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from reconcile.core.tolerance import agrees
from reconcile.errors import InputError
from reconcile.pricing.rules_paths import Tier

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
        return agrees(charged, expected, self)


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
