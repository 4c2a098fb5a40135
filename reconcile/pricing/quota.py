"""new-api's quota formula, exact: a Decimal reference for one log and an int64 version for columns.

A token-priced model (new-api ``service/text_quota.go``, ``calculateTextQuotaSummary``)::

    base  = prompt - cache - cache_creation - image     (Anthropic usage: prompt - image)
    quota = (max(base, 0) + cache x cache_ratio + cache_creation x cache_creation_ratio
             + image x image_ratio + completion x completion_ratio) x model_ratio x group_ratio

rounded half away from zero (shopspring ``Round(0)``); 0 when the log records no tokens at
all; at least 1 when model_ratio x group_ratio is not 0. Under Anthropic usage the cache writes
split into 5-minute (cache_creation_ratio) and 1-hour (cache_creation_ratio_1h) tokens. A
per-call model costs ``model_price x quota_per_unit x group_ratio``, rounded the same way.

Exact without a Decimal per row: each ratio is a decimal with few places, so a power of ten
makes it an integer, the formula becomes integer products in numpy int64, and an integer
division rounds. Rows whose size could overflow int64 (a float estimate, far below the limit,
decides) are left to the Decimal reference, which the tests prove equal to the vector version.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Final

import numpy as np
import numpy.typing as npt

from reconcile.core.money import round_half_away
from reconcile.pricing.paths.base import Terms
from reconcile.pricing.paths.text import COMPONENTS, Ratios, Usage, text_exact
from reconcile.pricing.rules import ModelRule

#: int64 head-room for the integer formulas: an estimate at or above it is priced in Decimal
INT64_HEADROOM: Final = float(2**62)


def price_one(
    rule: ModelRule,
    prompt_tokens: int,
    completion_tokens: int,
    *,
    group_ratio: Decimal | int = 1,
    quota_per_unit: Decimal | int = 500000,
    cache_tokens: int = 0,
    cache_creation_tokens: int = 0,
    cache_creation_tokens_5m: int = 0,
    cache_creation_tokens_1h: int = 0,
    image_tokens: int = 0,
    anthropic: bool = False,
) -> int:
    """The quota of one log under `rule`, in Decimal arithmetic: the reference implementation.

    A per-call rule ignores tokens. The 5m/1h split of cache writes counts only under
    Anthropic usage, as in new-api. ValueError for image tokens when the rule has no
    image_ratio (the caller reports such logs as not re-priceable).
    """
    return quota_exact(
        rule,
        prompt_tokens,
        completion_tokens,
        Decimal(group_ratio),
        Decimal(quota_per_unit),
        (cache_tokens, cache_creation_tokens, cache_creation_tokens_5m, cache_creation_tokens_1h),
        image_tokens,
        anthropic,
    )[0]


def quota_exact(
    rule: ModelRule,
    prompt_tokens: int,
    completion_tokens: int,
    group_ratio: Decimal,
    quota_per_unit: Decimal,
    cache: tuple[int, int, int, int],
    image_tokens: int,
    anthropic: bool,
) -> tuple[int, bool]:
    """(quota, whether the minimum of 1 lifted it); `cache` is (read, write, write 5m, 1h)."""
    cache_tokens, creation_tokens, creation_5m, creation_1h = cache
    with localcontext() as ctx:
        ctx.prec = 200  # far beyond any product here: every step is exact
        if rule.model_price is not None:
            return round_half_away(
                Terms(rule, group_ratio, quota_per_unit).call(rule.model_price)
            ), False
        if prompt_tokens + completion_tokens == 0:
            return 0, False
        if image_tokens and rule.image_ratio is None:
            raise ValueError("image tokens need an image_ratio in the rule")
        usage = Usage(
            prompt_tokens,
            completion_tokens,
            cache_tokens,
            creation_tokens,
            creation_5m,
            creation_1h,
            image_tokens,
            anthropic=anthropic,
        )
        ratios = Ratios.of(rule)
        quota = round_half_away(text_exact(usage, ratios, group_ratio))
        if quota <= 0 and ratios.model * group_ratio != 0:
            return 1, True
        return quota, False


def round_div(
    numerator: npt.NDArray[np.int64], den: npt.NDArray[np.int64] | int
) -> npt.NDArray[np.int64]:
    """numerator / den rounded half away from zero, in integers (den a power of ten >= 1).

    A single den (an int) divides many times faster than one per element; the sign is put
    back by a product (0 stays 0), cheaper than a choice per element."""
    half = den // 2
    magnitude = (np.abs(numerator) + half) // den
    out: npt.NDArray[np.int64] = (magnitude * np.sign(numerator)).astype(np.int64, copy=False)
    return out


def places(d: Decimal) -> int:
    """Digits after the decimal point of `d` written without trailing zeros."""
    exponent = d.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


@dataclass(frozen=True)
class Combo:
    """One (rule, group) pair: everything constant for its logs, as exact integers."""

    rule_index: int
    rule: ModelRule
    group: str
    group_ratio: Decimal
    per_call_quota: int  # per-call rules only
    scale: int  # 10**D, D the most decimal places among the token ratios
    coef: dict[str, int]  # ratio x scale for each of COEFFICIENTS
    multiplier: int  # model_ratio x group_ratio x 10**e, an integer
    den: int  # 10**(D + e)
    fits_int64: bool  # False: constants too large, price its logs one by one

    @classmethod
    def build(
        cls, index: int, rule: ModelRule, group: str, group_ratio: Decimal, quota_per_unit: Decimal
    ) -> Combo:
        with localcontext() as ctx:
            ctx.prec = 200
            if rule.model_price is not None:
                terms = Terms(rule, group_ratio, quota_per_unit)
                quota = round_half_away(terms.call(rule.model_price))
                return cls(index, rule, group, group_ratio, quota, 1, {}, 0, 1, True)
            assert rule.model_ratio is not None
            of = Ratios.of(rule)
            ratios = {c.name: c.ratio(of) for c in COMPONENTS}
            d = max(places(r) for r in ratios.values())
            coef = {k: int(r * 10**d) for k, r in ratios.items()}  # "base": 10**d
            m = rule.model_ratio * group_ratio
            e = places(m)
            multiplier = int(m * 10**e)
        fits = d + e <= 18 and multiplier < 2**62 and all(c < 2**62 for c in coef.values())
        return cls(index, rule, group, group_ratio, 0, 10**d, coef, multiplier, 10 ** (d + e), fits)


#: The constants of each combo, by component name ("base" is the scale, ratio 1).
COEFFICIENTS: Final = tuple(c.name for c in COMPONENTS)


@dataclass
class TokenColumns:
    """The token counts of some logs, int64 (absent = 0)."""

    prompt: npt.NDArray[np.int64]
    completion: npt.NDArray[np.int64]
    cache: npt.NDArray[np.int64]
    creation: npt.NDArray[np.int64]
    creation_5m: npt.NDArray[np.int64]
    creation_1h: npt.NDArray[np.int64]
    image: npt.NDArray[np.int64]
    anthropic: npt.NDArray[np.bool_]


def quota_columns(
    tokens: TokenColumns,
    combos: list[Combo],
    combo: npt.NDArray[np.int64],
    extra: npt.NDArray[np.int64] | None = None,
    *,
    floor: bool = False,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Token-priced quota of every log (combo[i] its token-priced Combo), exactly, in int64.

    Returns (quota, lifted by the minimum of 1, too large for int64: use `quota_exact`).
    `extra`: a surcharge per log scaled by its combo's den, added before rounding (0 <= extra
    < 2**62). `floor`: truncate instead of rounding, as new-api's older int() paths do.
    """
    const = {
        "den": np.array([x.den for x in combos], dtype=np.int64),
        "mult": np.array([x.multiplier for x in combos], dtype=np.int64),
    }
    for k in COEFFICIENTS:
        const[k] = np.array([x.coef.get(k, 0) for x in combos], dtype=np.int64)
    fits = np.array([x.fits_int64 for x in combos], dtype=bool)
    # a term without tokens in any log adds nothing: neither computed nor looked up
    counts = [(c.name, c.vector(tokens)) for c in COMPONENTS]
    counts = [(k, count) for k, count in counts if count.any()]
    terms = [(count, const[k][combo]) for k, count in counts]
    mult = const["mult"][combo]
    dens = const["den"][combo]
    den = int(dens[0]) if len(dens) and dens.min() == dens.max() else dens
    add = np.zeros(len(combo), dtype=np.int64) if extra is None else extra
    # one bound for all logs (largest count x largest constant); per log only above it
    bound = sum(_peak(count) * _peak(const[k]) for k, count in counts)
    if fits.all() and bound * _peak(const["mult"]) + _peak(add) < INT64_HEADROOM:
        too_big = np.zeros(len(combo), dtype=bool)
        total = np.zeros(len(combo), dtype=np.int64)
        for count, coef in terms:
            total += count * coef
        scaled = total * mult + add
    else:
        estimate = np.zeros(len(combo))
        for count, coef in terms:
            estimate += count.astype(np.float64) * coef.astype(np.float64)
        big = estimate * mult + add.astype(np.float64)
        too_big = ~fits[combo] | (estimate >= INT64_HEADROOM) | (big >= INT64_HEADROOM)
        total = np.zeros(len(combo), dtype=np.int64)
        for count, coef in terms:
            total += np.where(too_big, 0, count) * coef
        scaled = total * np.where(too_big, 0, mult) + np.where(too_big, 0, add)
    quota = scaled // den if floor else round_div(scaled, den)
    used = tokens.prompt + tokens.completion
    quota = np.where(used == 0, 0, quota)
    lifted = ~too_big & (used > 0) & (mult != 0) & (quota <= 0)
    quota = np.where(lifted, 1, quota)
    return quota, lifted, too_big


def _peak(values: npt.NDArray[np.int64]) -> float:
    """The largest magnitude in `values` (0 when empty), as a float."""
    if not len(values):
        return 0.0
    return float(max(abs(int(values.max())), abs(int(values.min()))))
