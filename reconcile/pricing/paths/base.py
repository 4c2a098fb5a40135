"""What every billing path reads and returns: one log, the contract's terms, a charge or a reason.

Paths run row by row in exact Decimal arithmetic. They see only logs that are not plain text
(or whose plain-text price disagreed), which are few; the common text path is vectorised in
`reconcile.pricing.quota` and proven equal to `paths.text`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from reconcile.pricing.rules import ModelRule

MILLION: Final = Decimal(1_000_000)
THOUSAND: Final = Decimal(1000)


class BadField(ValueError):
    """A key of `other` that pricing needs holds a value it cannot use."""

    def __init__(self, key: str, value: object) -> None:
        super().__init__(f"`other` has an invalid {key}: {value!r}"[:160])
        self.key = key


@dataclass(frozen=True, slots=True)
class Row:
    """One consume log as a path reads it (`other` already parsed: {} when empty)."""

    quota: int
    prompt: int
    completion: int
    model: str
    group: str
    content: str
    other: dict[str, Any]

    def number(self, key: str) -> Decimal | None:
        """A finite number in `other` as the exact decimal of the float Go wrote; None if absent."""
        v = self.other.get(key)
        if v is None or isinstance(v, bool) or not isinstance(v, int | float):
            return None
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return Decimal(repr(v)) if isinstance(v, float) else Decimal(v)

    def count(self, key: str) -> int:
        """A token or call count in `other` (absent: 0); BadField when not a whole number >= 0."""
        v = self.other.get(key)
        if v is None:
            return 0
        if type(v) is int and 0 <= v <= 2**53:
            return v
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise BadField(key, v)
        if isinstance(v, float) and (not math.isfinite(v) or v != int(v)):
            raise BadField(key, v)
        if v < 0 or v > 2**53:
            raise BadField(key, v)
        return int(v)

    def flag(self, key: str) -> bool:
        return self.other.get(key) is True

    def text(self, key: str) -> str:
        v = self.other.get(key)
        if isinstance(v, list):
            return " -> ".join(str(x) for x in v)
        return "" if v is None else str(v)


@dataclass(frozen=True, slots=True)
class Terms:
    """The contract's terms for one log: its rule, its group ratio, quota per USD."""

    rule: ModelRule
    group_ratio: Decimal
    quota_per_unit: Decimal
    pair: bool = False  # the group ratio is a (user group, using group) pair's

    def call(self, price: Decimal) -> Decimal:
        """The quota of one call priced `price` USD, exact: new-api's UsePrice branch
        (model_price x quota_per_unit x group_ratio), for per-call, image, audio and task."""
        return price * self.quota_per_unit * self.group_ratio


@dataclass(frozen=True, slots=True)
class Charge:
    """The contract's charge for a log, exact, before rounding half away from zero.

    `truncates`: the gateway's code for this path rounds with int() (towards zero), so the
    floor is accepted as well. `alt`/`alt_cause`: what a known gateway defect would charge
    instead, and its name, so a mismatch that equals it is explained.
    """

    path: str
    exact: Decimal
    truncates: bool = False
    floor_one: bool = False  # the gateway's minimum: at least 1 quota when a ratio is not 0
    alt: Decimal | None = None
    alt_cause: str = ""
    alt_unsure: bool = False  # `alt` is as likely right as `exact`: agreeing with it is unchecked
    notes: tuple[str, ...] = field(default_factory=tuple)

    def on(self, path: str) -> Charge:
        """The same charge on another path label (dataclasses.replace, without its cost)."""
        return Charge(
            path,
            self.exact,
            self.truncates,
            self.floor_one,
            self.alt,
            self.alt_cause,
            self.alt_unsure,
            self.notes,
        )


@dataclass(frozen=True, slots=True)
class Unpriceable:
    """Why the rules cannot reproduce a log's charge: a short code (counted) and words."""

    path: str
    code: str
    reason: str


Priced = Charge | Unpriceable
