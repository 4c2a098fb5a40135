"""The rules keys of the billing paths beyond plain tokens, and the check that no price overflows.

Real contracts price more than tokens: tool calls per 1,000 calls, audio with its own ratios,
images by size and quality, video tasks per second and per size, a (user group, using group)
pair with its own ratio, and tiers by prompt size. Each key is validated here, once, with the
file's line in the message; `reconcile.pricing.paths` reads them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

from reconcile.pricing.rules_toml import MAX_NUMBER, _Checker, plain

#: Keys of a [[model]] table added by the billing paths (see docs/rules.md).
TOKEN_PATH_KEYS: Final = ("audio_ratio", "audio_completion_ratio", "tiers")
CALL_PATH_KEYS: Final = ("image_prices", "task_price_per_second", "task_ratios")
ANY_PATH_KEYS: Final = ("tool_prices", "audio_input_price")
PATH_KEYS: Final = TOKEN_PATH_KEYS + CALL_PATH_KEYS + ANY_PATH_KEYS
TIER_KEYS: Final = (
    "max_prompt_tokens",
    "model_ratio",
    "completion_ratio",
    "cache_ratio",
    "cache_creation_ratio",
)
#: Tool names new-api prices per call (dto.BuildInTool*), plus the older flags' names.
KNOWN_TOOLS: Final = (
    "web_search",
    "web_search_preview",
    "file_search",
    "image_generation_call",
    "google_search",
)
#: The largest quota a single log may be given: what int64 holds.
INT64_MAX: Final = 2**63 - 1


class Tier(BaseModel):
    """One tier of a model priced by prompt size: its ratios up to `max_prompt_tokens`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_prompt_tokens: int | None = None  # None: no upper bound (the last tier)
    model_ratio: Decimal
    completion_ratio: Decimal | None = None  # None: the rule's
    cache_ratio: Decimal | None = None
    cache_creation_ratio: Decimal | None = None


def validate_path_keys(
    ck: _Checker, raw: dict[str, Any], where: tuple[Any, ...], ctx: str, per_call: bool
) -> dict[str, Any]:
    """The billing-path keys of one [[model]] table, validated."""
    out: dict[str, Any] = {}
    wrong = CALL_PATH_KEYS if not per_call else TOKEN_PATH_KEYS
    for key in wrong:
        if key in raw:
            kind = "per-call (model_price)" if key in CALL_PATH_KEYS else "token (model_ratio)"
            raise ck.fail(f"{key} applies to {kind} rules only {ctx}", (*where, key), key)
    for key in ("audio_ratio", "audio_completion_ratio", "audio_input_price"):
        if key in raw:
            out[key] = ck.number(raw[key], (*where, key), key, context=ctx)
    if "task_price_per_second" in raw:
        key = "task_price_per_second"
        out[key] = ck.number(raw[key], (*where, key), key, context=ctx)
    if "tool_prices" in raw:
        out["tool_prices"] = _prices(ck, raw["tool_prices"], (*where, "tool_prices"), ctx)
        for name in out["tool_prices"]:
            if name not in KNOWN_TOOLS:
                raise ck.fail(
                    f"unknown tool {name!r} (known: {', '.join(KNOWN_TOOLS)}) {ctx}",
                    (*where, "tool_prices", name),
                    f"tool_prices.{name}",
                )
    if "image_prices" in raw:
        out["image_prices"] = _prices(ck, raw["image_prices"], (*where, "image_prices"), ctx)
    if "task_ratios" in raw:
        table = ck.table(raw["task_ratios"], (*where, "task_ratios"), "task_ratios")
        out["task_ratios"] = {
            name: _prices(ck, values, (*where, "task_ratios", name), ctx)
            for name, values in table.items()
        }
    if "tiers" in raw:
        out["tiers"] = _tiers(ck, raw["tiers"], (*where, "tiers"), ctx)
    return out


def _prices(ck: _Checker, raw: Any, where: tuple[Any, ...], ctx: str) -> dict[str, Decimal]:
    field = ".".join(str(w) for w in where[2:])
    table = ck.table(raw, where, field)
    return {
        str(k): ck.number(v, (*where, k), f"{field}.{k}", context=ctx) for k, v in table.items()
    }


def _tiers(ck: _Checker, raw: Any, where: tuple[Any, ...], ctx: str) -> list[Tier]:
    if not isinstance(raw, list) or not raw:
        raise ck.fail(f"write tiers as [[model.tiers]] tables {ctx}", where, "tiers")
    tiers: list[Tier] = []
    for i, item in enumerate(raw):
        table = ck.table(item, where, "tiers")
        ck.unknown(table, TIER_KEYS, where, "tiers")
        values: dict[str, Any] = {}
        for key in TIER_KEYS[1:]:
            if key in table:
                values[key] = ck.number(table[key], where, f"tiers.{key}", context=ctx)
        if "model_ratio" not in values:
            raise ck.fail(f"each tier needs a model_ratio {ctx}", where, "tiers.model_ratio")
        bound = table.get("max_prompt_tokens")
        last = i == len(raw) - 1
        if bound is None and not last:
            raise ck.fail(
                f"every tier but the last needs max_prompt_tokens {ctx}",
                where,
                "tiers.max_prompt_tokens",
            )
        if bound is not None:
            if isinstance(bound, bool) or not isinstance(bound, int) or bound <= 0:
                raise ck.fail(
                    f"max_prompt_tokens must be a whole number > 0, not {bound!r} {ctx}",
                    where,
                    "tiers.max_prompt_tokens",
                )
            if tiers and (tiers[-1].max_prompt_tokens or 0) >= bound:
                raise ck.fail(
                    f"tiers must grow: max_prompt_tokens {bound} is not above the previous "
                    f"tier's {ctx}",
                    where,
                    "tiers.max_prompt_tokens",
                )
            values["max_prompt_tokens"] = bound
        tiers.append(Tier(**values))
    return tiers


def group_pairs(ck: _Checker, raw: Any) -> dict[str, dict[str, Decimal]]:
    """`[group_pairs.<user group>] <using group> = ratio`: new-api's GroupGroupRatio."""
    out: dict[str, dict[str, Decimal]] = {}
    for user, table in ck.table(raw, ("group_pairs",), "group_pairs").items():
        inner = ck.table(table, ("group_pairs", user), f"group_pairs.{user}")
        out[user] = {
            using: ck.number(
                ratio,
                ("group_pairs", user, using),
                f"group_pairs.{user}.{using}",
                context=f"(ratio of user group {user!r} using group {using!r})",
            )
            for using, ratio in inner.items()
        }
    return out


def largest_call_quota(
    prices: list[Decimal], quota_per_unit: Decimal, group_ratios: list[Decimal]
) -> Decimal:
    """The largest quota one call of these prices can cost under these group ratios."""
    top_group = max([Decimal(1), *group_ratios])
    return max(prices, default=Decimal(0)) * quota_per_unit * top_group


def overflow_problem(
    prices: list[Decimal], quota_per_unit: Decimal, group_ratios: list[Decimal]
) -> str | None:
    """Why one call of these prices cannot be a quota (beyond int64), or None."""
    quota = largest_call_quota(prices, quota_per_unit, group_ratios)
    if quota <= INT64_MAX:
        return None
    return (
        f"one call would cost {plain(quota.to_integral_value())} quota "
        f"(price x quota_per_unit {plain(quota_per_unit)} x group ratio up to "
        f"{plain(max([Decimal(1), *group_ratios]))}), beyond the 64-bit quota a log can hold; "
        f"prices are USD per call, up to {plain(MAX_NUMBER)}"
    )
