"""Audio models (realtime and audio chat): new-api's calculateAudioQuota (service/quota.go).

    quota = (text_in + text_out x completion_ratio + audio_in x audio_ratio
             + audio_out x audio_ratio x audio_completion_ratio) x model_ratio x group_ratio

rounded half away from zero, at least 1 when the ratio is not 0; a per-call audio model
costs model_price x quota_per_unit x group_ratio, truncated with IntPart(). The token split
is in `other` (text_input, text_output, audio_input, audio_output) next to `audio: true`
(or `ws: true` for realtime); the rule gives audio_ratio and audio_completion_ratio.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from reconcile.pricing import paths
from reconcile.pricing.paths.base import BillingPath, Charge, Reason, Row, Terms, Unpriceable
from reconcile.pricing.rules import ModelRule

KEYS: Final = ("text_input", "text_output", "audio_input", "audio_output")
KEYS_SET: Final = frozenset(KEYS)
#: The `other` flags that send a log down this path (`ws`: realtime).
FLAGS: Final = ("audio", "ws")
TOKENS_MISSING: Final = Reason(
    "audio_tokens_missing", "an audio log whose `other` does not split text and audio tokens"
)
RATIO_MISSING: Final = Reason(
    "audio_ratio_missing", "audio tokens, and the rule has no audio_ratio"
)


def is_audio(row: Row) -> bool:
    return any(row.flag(k) for k in FLAGS)


def price_audio(row: Row, terms: Terms) -> Charge | Unpriceable:
    rule = terms.rule
    if rule.model_price is not None:
        exact = terms.call(rule.model_price)
        return Charge(paths.AUDIO, exact, truncates=True)
    if KEYS_SET.isdisjoint(row.other):
        return Unpriceable(paths.AUDIO, TOKENS_MISSING, "audio tokens not split in `other`")
    if rule.audio_ratio is None:
        return Unpriceable(
            paths.AUDIO, RATIO_MISSING, "audio tokens need an audio_ratio in the rule"
        )
    assert rule.model_ratio is not None
    counts = [row.count(k) for k in KEYS]
    total = sum((n * r for n, r in zip(counts, ratios(rule), strict=True)), Decimal(0))
    ratio = rule.model_ratio * terms.group_ratio
    used = row.prompt + row.completion > 0 or sum(counts) > 0
    return Charge(paths.AUDIO, total * ratio if used else Decimal(0), floor_one=used and ratio != 0)


def ratios(rule: ModelRule) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """The ratio of each of KEYS' token counts (before model_ratio x group_ratio)."""
    assert rule.audio_ratio is not None
    out = rule.audio_completion_ratio
    audio_out = rule.audio_ratio * (Decimal(1) if out is None else out)
    return (Decimal(1), rule.completion_ratio, rule.audio_ratio, audio_out)


AUDIO: Final = BillingPath(
    paths.AUDIO,
    rule_keys=(
        "model_ratio",
        "completion_ratio",
        "audio_ratio",
        "audio_completion_ratio",
        "model_price",
    ),
    marks=FLAGS,
    takes=lambda row, rule: is_audio(row),
    price=price_audio,
    reasons=(TOKENS_MISSING, RATIO_MISSING),
)
