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
from reconcile.pricing.paths.base import Charge, Row, Terms, Unpriceable

KEYS: Final = ("text_input", "text_output", "audio_input", "audio_output")
KEYS_SET: Final = frozenset(KEYS)
#: The `other` flags that send a log down this path (`ws`: realtime).
FLAGS: Final = ("audio", "ws")


def is_audio(row: Row) -> bool:
    return any(row.flag(k) for k in FLAGS)


def price_audio(row: Row, terms: Terms) -> Charge | Unpriceable:
    rule = terms.rule
    if rule.model_price is not None:
        exact = rule.model_price * terms.quota_per_unit * terms.group_ratio
        return Charge(paths.AUDIO, exact, truncates=True)
    if KEYS_SET.isdisjoint(row.other):
        return Unpriceable(paths.AUDIO, "audio_tokens_missing", "audio tokens not split in `other`")
    if rule.audio_ratio is None:
        return Unpriceable(
            paths.AUDIO, "audio_ratio_missing", "audio tokens need an audio_ratio in the rule"
        )
    assert rule.model_ratio is not None
    t_in, t_out, a_in, a_out = (row.count(k) for k in KEYS)
    completion = rule.audio_completion_ratio
    a_ratio = rule.audio_ratio
    total = (
        t_in
        + t_out * rule.completion_ratio
        + a_in * a_ratio
        + a_out * a_ratio * (Decimal(1) if completion is None else completion)
    )
    ratio = rule.model_ratio * terms.group_ratio
    used = row.prompt + row.completion > 0 or t_in + t_out + a_in + a_out > 0
    return Charge(paths.AUDIO, total * ratio if used else Decimal(0), floor_one=used and ratio != 0)
