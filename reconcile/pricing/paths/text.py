"""Text tokens, with cache reads and 5m/1h cache writes: new-api's calculateTextQuotaSummary.

    base  = prompt - image - separately priced audio - (cache + cache writes, OpenAI usage only)
    quota = (max(base, 0) + cache x cache_ratio + writes x cache_creation_ratio
             + writes_1h x cache_creation_ratio_1h + image x image_ratio
             + completion x completion_ratio) x model_ratio x group_ratio
            (+ separately priced audio input, + tool-call surcharges: `paths.tools`)

rounded half away from zero, at least 1 when model_ratio x group_ratio is not 0, 0 when the
log records no tokens and no surcharge. Each term is declared once in COMPONENTS: its rule
key, its `other` keys, its Decimal count (here) and its vectorised count (`quota.py`).

Usage semantics decide whether prompt_tokens include the cache tokens (OpenAI) or not
(Anthropic). The log says so in `usage_semantic`; older servers wrote `claude: true`; an
admin's view has admin_info.usage_billing_path; usage relayed from another new-api (chained
gateways) shows 5m/1h writes without a semantic (new-api's isLegacyClaudeDerivedOpenAIUsage).
A log with cache tokens and none of these is priced with OpenAI semantics; when only the
Anthropic arithmetic explains its charge, it is not re-priceable (the log cannot say which).
Before 2026-03 a `/v1/messages` request served by an OpenAI-type channel (`claude: true`,
request_conversion ending "OpenAI Compatible") was priced with Anthropic semantics on OpenAI
usage: its cached tokens were charged twice. The contract is the OpenAI arithmetic; the
defect is named when it explains a mismatch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from reconcile.pricing import paths
from reconcile.pricing.paths.base import BillingPath, Charge, Reason, Row, Terms, Unpriceable
from reconcile.pricing.rules import ModelRule
from reconcile.pricing.rules_paths import Tier

DOUBLE_CHARGE: Final = (
    "the gateway priced a /v1/messages request served by an OpenAI-type channel with "
    "Anthropic usage semantics, charging its {cache} cached tokens twice (new-api before 2026-03)"
)
ANTHROPIC_GUESS: Final = (
    "the charge fits Anthropic usage semantics (prompt_tokens without the {cache} cached "
    "tokens), as when usage is relayed from another new-api, not the OpenAI semantics the "
    "log implies; which one applied is not recorded"
)
#: Given by the verdict (`verdicts.judge`) when only `Charge.alt_unsure`'s arithmetic fits.
USAGE_SEMANTICS_UNKNOWN: Final = Reason(
    "usage_semantics_unknown",
    "a charge only Anthropic usage semantics explain, while the log does not say which applied",
)
IMAGE_RATIO_MISSING: Final = Reason(
    "image_ratio_missing", "image input tokens, and the rule has no image_ratio"
)
NEGATIVE_TOKENS: Final = Reason("negative_tokens", "negative token counts")
#: Given by `assign`, which sees the surcharges too.
CHARGED_WITHOUT_TOKENS: Final = Reason(
    "charged_without_tokens", "charged although the log records no tokens"
)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one log, as new-api's textQuotaSummary holds them."""

    prompt: int
    completion: int
    cache: int = 0
    creation: int = 0
    creation_5m: int = 0
    creation_1h: int = 0
    image: int = 0
    audio_in: int = 0  # separately priced audio input tokens (subtracted from the base)
    anthropic: bool = False


@dataclass(frozen=True, slots=True)
class Ratios:
    model: Decimal
    completion: Decimal
    cache: Decimal
    creation: Decimal
    creation_1h: Decimal
    image: Decimal | None

    @classmethod
    def of(cls, rule: ModelRule, tier: Tier | None = None) -> Ratios:
        key = (id(rule), id(tier))
        found = _RATIOS.get(key)
        if found is not None and found[0] is rule and found[1] is tier:
            return found[2]
        made = cls._of(rule, tier)
        if len(_RATIOS) > 4096:
            _RATIOS.clear()
        _RATIOS[key] = (rule, tier, made)
        return made

    @classmethod
    def _of(cls, rule: ModelRule, tier: Tier | None) -> Ratios:
        assert rule.model_ratio is not None

        def pick(own: Decimal | None, default: Decimal) -> Decimal:
            return default if own is None else own

        return cls(
            model=tier.model_ratio if tier else rule.model_ratio,
            completion=pick(tier.completion_ratio if tier else None, rule.completion_ratio),
            cache=pick(tier.cache_ratio if tier else None, rule.cache_ratio),
            creation=pick(tier.cache_creation_ratio if tier else None, rule.cache_creation_ratio),
            creation_1h=rule.creation_ratio_1h,
            image=rule.image_ratio,
        )


#: Ratios by (rule, tier), held with the objects so a reused id() never matches.
_RATIOS: dict[tuple[int, int], tuple[ModelRule, Tier | None, Ratios]] = {}
Vec = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Component:
    """One term of the text formula: tokens x ratio, declared once for both arithmetics."""

    name: str
    rule_key: str  # the rule's ratio ("" for the base, whose ratio is 1)
    other_keys: tuple[str, ...]  # where `other` holds its tokens
    ratio: Callable[[Ratios], Decimal]
    count: Callable[[Usage], int]  # the Decimal path's token count
    vector: Callable[[Any], Vec]  # the same count over TokenColumns (quota.py)
    #: Why a log cannot be priced when it has such tokens and the rule no ratio, and this
    #: log's words ({n}: its tokens).
    missing: tuple[Reason, str] | None = None


def _base(u: Usage) -> int:
    cached = 0 if u.anthropic else u.cache + u.creation
    return max(u.prompt - u.image - u.audio_in - cached, 0)


def _base_vec(t: Any) -> Vec:
    cached = np.where(t.anthropic, 0, t.cache + t.creation)
    out: Vec = np.maximum(t.prompt - t.image - cached, 0)
    return out


def _writes(u: Usage) -> int:
    if not u.anthropic:
        return u.creation
    return max(u.creation - u.creation_5m - u.creation_1h, 0) + u.creation_5m


def _writes_vec(t: Any) -> Vec:
    rest = np.maximum(t.creation - t.creation_5m - t.creation_1h, 0) + t.creation_5m
    out: Vec = np.where(t.anthropic, rest, t.creation)
    return out


COMPONENTS: Final = (
    Component("base", "", (), lambda r: Decimal(1), _base, _base_vec),
    Component(
        "cache", "cache_ratio", ("cache_tokens",), lambda r: r.cache, lambda u: u.cache,
        lambda t: t.cache,
    ),
    Component(
        "creation",
        "cache_creation_ratio",
        ("cache_creation_tokens", "cache_creation_tokens_5m"),
        lambda r: r.creation,
        _writes,
        _writes_vec,
    ),
    Component(
        "creation_1h",
        "cache_creation_ratio_1h",
        ("cache_creation_tokens_1h",),
        lambda r: r.creation_1h,
        lambda u: u.creation_1h if u.anthropic else 0,
        lambda t: np.where(t.anthropic, t.creation_1h, 0),
    ),
    Component(
        "image", "image_ratio", ("image_output",), lambda r: r.image or Decimal(0),
        lambda u: u.image, lambda t: t.image,
        (IMAGE_RATIO_MISSING, "{n} image input tokens need an image_ratio"),
    ),
    Component(
        "completion",
        "completion_ratio",
        (),
        lambda r: r.completion,
        lambda u: u.completion,
        lambda t: t.completion,
    ),
)  # fmt: skip


def text_exact(u: Usage, r: Ratios, group_ratio: Decimal) -> Decimal:
    """The token part of the quota, exact (caller holds a wide Decimal context)."""
    total = sum((c.count(u) * c.ratio(r) for c in COMPONENTS), Decimal(0))
    return total * r.model * group_ratio


def usage_of(row: Row, anthropic: bool, audio_in: int = 0) -> Usage:
    return Usage(
        prompt=row.prompt,
        completion=row.completion,
        cache=row.count("cache_tokens"),
        creation=row.count("cache_creation_tokens"),
        creation_5m=row.count("cache_creation_tokens_5m"),
        creation_1h=row.count("cache_creation_tokens_1h"),
        image=row.count("image_output"),
        audio_in=audio_in,
        anthropic=anthropic,
    )


@dataclass(frozen=True, slots=True)
class Semantics:
    """Which usage semantics the contract prices a log with, and what a defect would give."""

    anthropic: bool
    path: str
    alt_anthropic: bool = False  # also compute the Anthropic price, to name it if it matches
    alt_cause: str = ""
    alt_unsure: bool = False


#: The `other` keys `semantics` reads (usage_billing_path: inside admin_info).
SEMANTIC_KEYS: Final = ("usage_semantic", "usage_billing_path", "claude", "request_conversion")


def semantics(row: Row, usage: Usage) -> Semantics:
    """The usage semantics of a log, from what the log itself says (see the module doc)."""
    cached = usage.cache + usage.creation > 0
    path = paths.CACHE if cached else paths.TEXT
    said = row.text("usage_semantic").lower()
    if said:
        return Semantics(said == "anthropic", path)
    admin = row.other.get("admin_info")
    billed = str(admin.get("usage_billing_path", "")) if isinstance(admin, dict) else ""
    if billed.startswith(("anthropic", "openai")):
        return Semantics(billed.startswith("anthropic"), path)
    if row.flag("claude"):
        if row.text("request_conversion").rstrip().endswith("OpenAI Compatible"):
            cause = DOUBLE_CHARGE.format(cache=usage.cache)
            return Semantics(False, path, alt_anthropic=cached, alt_cause=cause)
        return Semantics(True, path)
    if usage.creation_5m + usage.creation_1h > 0:
        return Semantics(True, paths.CHAINED)
    if cached:
        cause = ANTHROPIC_GUESS.format(cache=usage.cache)
        return Semantics(False, path, alt_anthropic=True, alt_cause=cause, alt_unsure=True)
    return Semantics(False, path)


def price_text(
    row: Row,
    terms: Terms,
    extra: Decimal,
    audio_in: int,
    tier: Tier | None = None,
    sem: Semantics | None = None,
    usage: Usage | None = None,
) -> Charge | Unpriceable:
    """A token-priced log; `extra` is the surcharge quota added before rounding. `usage`:
    the log's `usage_of(row, False, audio_in)`, when the caller already read it."""
    rule = terms.rule
    if usage is None:
        usage = usage_of(row, False, audio_in)
    if sem is None:
        sem = semantics(row, usage)
    if sem.anthropic:
        usage = replace(usage, anthropic=True)
    for c in COMPONENTS:
        if c.missing and getattr(rule, c.rule_key) is None and c.count(usage):
            why, words = c.missing
            return Unpriceable(sem.path, why, words.format(n=c.count(usage)))
    if row.prompt < 0 or row.completion < 0:
        return Unpriceable(sem.path, NEGATIVE_TOKENS, "negative token counts")
    ratios = Ratios.of(rule, tier)
    exact = text_exact(usage, ratios, terms.group_ratio) + extra
    if row.prompt + row.completion == 0 and extra == 0:
        exact = Decimal(0)
    lift = ratios.model * terms.group_ratio != 0 and (row.prompt + row.completion > 0 or extra)
    alt = None
    if sem.alt_anthropic:
        other = replace(usage, anthropic=True)
        alt = text_exact(other, ratios, terms.group_ratio) + extra
    return Charge(
        sem.path,
        exact,
        truncates=sem.anthropic,  # PostClaudeConsumeQuota (older servers) truncates with int()
        floor_one=bool(lift),
        alt=alt,
        alt_cause=sem.alt_cause,
        alt_unsure=sem.alt_unsure,
    )


def pick_tier(rule: ModelRule, prompt_size: int) -> Tier | None:
    """The rule's tier for a prompt of this size (None when the rule has no tiers)."""
    for tier in rule.tiers:
        if tier.max_prompt_tokens is None or prompt_size <= tier.max_prompt_tokens:
            return tier
    return None


#: Priced by tokens with surcharges added (`assign`): the path of every log no other takes.
TEXT: Final = BillingPath(
    paths.TEXT,
    rule_keys=("model_ratio", *(c.rule_key for c in COMPONENTS if c.rule_key)),
    marks=(*(k for c in COMPONENTS for k in c.other_keys), *SEMANTIC_KEYS),
    takes=lambda row, rule: True,
    reasons=(IMAGE_RATIO_MISSING, NEGATIVE_TOKENS, CHARGED_WITHOUT_TOKENS, USAGE_SEMANTICS_UNKNOWN),
)
