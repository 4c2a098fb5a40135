"""What every billing path reads and returns: one log, the contract's terms, a charge or a reason.

Paths run row by row in exact Decimal arithmetic. They see only logs that are not plain text
(or whose plain-text price disagreed), which are few; the common text path is vectorised in
`reconcile.pricing.quota` and proven equal to `paths.text`.

Each path module declares itself once as a `BillingPath` and each reason it cannot price a
log as a `Reason` (code and the report's sentence), beside the code that gives it;
`paths.registry` lists the paths in the order new-api tries them, and everything else (the
route, the fast tier's key patterns, the report's sentences, docs/rules.md's table of codes)
is read from those declarations. The reasons any path may give are declared here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
class Reason:
    """Why the rules cannot reproduce a charge: a short code (counted in the report) and one
    sentence that holds for every log with that code and says what would make it checkable.

    Declared once, at module level beside the code that gives it, so the report's sentence
    and docs/rules.md cannot drift from the codes the paths give (`paths.registry`).
    """

    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Unpriceable:
    """A log the rules cannot price: why (a declared Reason) and this log's own words."""

    path: str
    why: Reason
    detail: str

    @property
    def code(self) -> str:
        return self.why.code


Priced = Charge | Unpriceable

#: Reasons any path may give: the log's record itself is broken, or too large.
OTHER_UNREADABLE: Final = Reason(
    "other_unreadable", "the log's `other` field is not valid JSON: its record is broken"
)
OTHER_BAD_FIELD: Final = Reason(
    "other_bad_field", "a count in the log's `other` is not a whole number: its record is broken"
)
QUOTA_BEYOND_64_BITS: Final = Reason(
    "quota_beyond_64_bits", "the quota or token counts are beyond the 64-bit range"
)
REASONS: Final = (OTHER_UNREADABLE, OTHER_BAD_FIELD, QUOTA_BEYOND_64_BITS)


@dataclass(frozen=True)
class BillingPath:
    """A billing path, declared once in its module. What a new path declares:

    - `name`: its label (`reconcile.pricing.paths`), shown in the `path` column;
    - `rule_keys`: the [[model]] keys it prices with (each a ModelRule field);
    - `marks`: the `other` keys whose presence sends a log down it or adds to its charge
      (the vectorised text tier never settles a log showing one; the column tiers leave a
      log showing a key of a path tried before theirs to the row tier);
    - `content`: a regex of `content` that sends a log down it ("" if none);
    - `takes`: whether a log under a rule takes it, asked in `registry.ROUTES` order (None:
      not a path of its own but a surcharge added to the per-call and text paths);
    - `price`: its exact Decimal charge (None: priced by tokens or per call, with surcharges,
      in `assign`);
    - `reasons`: every Reason its code may give.

    Column (vectorised) tiers are not declared here: they are built on the stage's columns
    and are proven equal to `price`, which stays the reference.
    """

    name: str
    rule_keys: tuple[str, ...]
    marks: tuple[str, ...] = ()
    content: str = ""
    takes: Callable[[Row, ModelRule], bool] | None = None
    price: Callable[[Row, Terms], Priced] | None = None
    reasons: tuple[Reason, ...] = ()
