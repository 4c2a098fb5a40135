"""Tool-call surcharges and separately priced audio input: new-api's
calculateTextToolCallSurcharge and the audio branch of calculateTextQuotaSummary.

    tool     = price (USD per 1,000 calls) x calls / 1000 x group_ratio x quota_per_unit
    audio in = price (USD per 1M tokens) / 1e6 x audio tokens x group_ratio x quota_per_unit

Both are added to the token (or per-call) quota before it is rounded. Newer servers list
the tools in `other.tool_surcharges` ([{name, count, price}]); older ones set flags with
counts (`web_search` + `web_search_call_count`, `file_search` + `file_search_call_count`,
`image_generation_call`). The contract's price comes from the rule's `tool_prices` and
`audio_input_price`; a tool the rules do not price makes the log not re-priceable.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from reconcile.pricing import paths
from reconcile.pricing.paths.base import (
    MILLION,
    THOUSAND,
    BadField,
    BillingPath,
    Reason,
    Row,
    Terms,
    Unpriceable,
)

#: Newer servers: a list of {name, count, price}.
LIST_KEY: Final = "tool_surcharges"
#: Older servers: (flag key, count key, tool name); a set flag without a count is one call.
FLAGS: Final = (
    ("web_search", "web_search_call_count", "web_search"),
    ("file_search", "file_search_call_count", "file_search"),
    ("image_generation_call", "image_generation_call_count", "image_generation_call"),
)


@dataclass(frozen=True, slots=True)
class Extras:
    """What is added to a log's quota besides its tokens (or per-call price)."""

    quota: Decimal  # exact, before rounding
    audio_in: int  # separately priced audio input tokens (subtracted from the text base)
    names: tuple[str, ...]  # what was added, for the path label and messages


NONE: Final = Extras(Decimal(0), 0, ())
_KEYS: Final = frozenset(k for flag, count, _ in FLAGS for k in (flag, count))
#: The keys of tool calls, and every `other` key this path reads (with audio input).
CALL_KEYS: Final = (LIST_KEY, *sorted(_KEYS))
_AUDIO_KEYS: Final = ("audio_input_seperate_price", "audio_input_token_count")
KEYS: Final = (*CALL_KEYS, *_AUDIO_KEYS)
PRICE_MISSING: Final = Reason(
    "tool_price_missing",
    "a tool surcharge (web search, file search, image generation call) the rules do not price "
    "(tool_prices)",
)
AUDIO_INPUT_PRICE_MISSING: Final = Reason(
    "audio_input_price_missing",
    "audio input priced per 1M tokens, which the rules do not price (audio_input_price)",
)


def call_quota(price: Decimal, terms: Terms) -> Decimal:
    """The quota of one call of a tool priced `price` USD per 1,000 calls, exact."""
    return price / THOUSAND * terms.group_ratio * terms.quota_per_unit


def calls(row: Row) -> list[tuple[str, int]]:
    """The tool calls a log was charged for: (tool name, calls)."""
    other = row.other
    items = other.get(LIST_KEY)
    found: list[tuple[str, int]] = []
    if items is None and _KEYS.isdisjoint(other):
        return found
    if isinstance(items, list):
        for item in items:
            if not isinstance(item, dict):
                raise BadField(LIST_KEY, item)
            name, count = item.get("name"), item.get("count")
            if not isinstance(name, str) or isinstance(count, bool) or not isinstance(count, int):
                raise BadField(LIST_KEY, item)
            if count < 0:
                raise BadField(LIST_KEY, item)
            found.append((name, count))
        return found
    for flag, key, name in FLAGS:
        n = row.count(key)
        if n > 0 or row.flag(flag):
            found.append((name, n or 1))
    return found


def extras(row: Row, terms: Terms, path: str) -> Extras | Unpriceable:
    """The contract's surcharges for a log, or why the rules cannot price them."""
    rule, scale = terms.rule, terms.group_ratio * terms.quota_per_unit
    total = Decimal(0)
    names: list[str] = []
    for name, n in calls(row):
        if n == 0:
            continue
        price = rule.tool_prices.get(name)
        if price is None:
            s = "s" if n != 1 else ""
            return Unpriceable(
                path + "+" + paths.TOOLS,
                PRICE_MISSING,
                f"a {name} surcharge ({n} call{s}) the rules do not price (tool_prices.{name})",
            )
        total += call_quota(price, terms) * n
        names.append(name)
    audio = 0
    if not names and row.other.keys().isdisjoint(_AUDIO_KEYS):
        return NONE
    if row.flag("audio_input_seperate_price") or row.count("audio_input_token_count") > 0:
        audio = row.count("audio_input_token_count")
        if rule.audio_input_price is None:
            return Unpriceable(
                path + "+" + paths.TOOLS,
                AUDIO_INPUT_PRICE_MISSING,
                f"{audio} audio input tokens priced per 1M tokens, which the rules do not "
                "price (audio_input_price)",
            )
        total += rule.audio_input_price / MILLION * audio * scale
        names.append("audio_input")
    if not names:
        return NONE
    return Extras(total, audio, tuple(names))


#: Not a path of its own: added to the per-call and text paths' charge before rounding.
TOOLS: Final = BillingPath(
    paths.TOOLS,
    rule_keys=("tool_prices", "audio_input_price"),
    marks=KEYS,
    reasons=(PRICE_MISSING, AUDIO_INPUT_PRICE_MISSING),
)
