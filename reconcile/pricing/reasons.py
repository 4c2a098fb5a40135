"""What each reason code of a not re-priceable log means, in words for the report.

Each log's own reason (`Pricing.priced["reason"]`) says what it lacked in its own figures;
the report counts logs by code and needs one sentence per code that holds for all of them.
The codes are the ones the billing paths give (docs/rules.md lists them).
"""

from __future__ import annotations

from typing import Final

#: reason code -> what it means and what would make such logs checkable.
REASON_TEXT: Final[dict[str, str]] = {
    "other_unreadable": "the log's `other` field is not valid JSON: its record is broken",
    "other_bad_field": "a count in the log's `other` is not a whole number: its record is broken",
    "quota_beyond_64_bits": "the quota or token counts are beyond the 64-bit range",
    "tool_price_missing": "a tool surcharge (web search, file search, image generation call) "
    "the rules do not price (tool_prices)",
    "audio_input_price_missing": "audio input priced per 1M tokens, which the rules do not "
    "price (audio_input_price)",
    "audio_ratio_missing": "audio tokens, and the rule has no audio_ratio",
    "audio_tokens_missing": "an audio log whose `other` does not split text and audio tokens",
    "image_ratio_missing": "image input tokens, and the rule has no image_ratio",
    "image_size_unpriced": "an image size or quality the rules' image_prices do not price",
    "task_priced_by_tokens": "an async task priced by tokens, which the log does not record",
    "task_seconds_unreadable": "an async task whose seconds in `content` are not a whole number",
    "task_ratio_unpriced": "an async task multiplier the rules do not hold (task_ratios)",
    "task_ratio_not_in_contract": "an async task multiplier not among the rules' task_ratios",
    "task_settlement": "an async task's settlement: the actual quota is the upstream's measure",
    "task_settlement_incomplete": "an async task's settlement without its amounts",
    "tiered_expr": "priced by the gateway's tiered billing expression, which the rules do not "
    "hold (give the rule tiers)",
    "charged_without_tokens": "charged although the log records no tokens",
    "negative_tokens": "negative token counts",
    "usage_semantics_unknown": "a charge only Anthropic usage semantics explain, while the log "
    "does not say which applied",
}


def reason_text(code: str) -> str:
    """The sentence for `code`; a code this module does not know is shown as is."""
    return REASON_TEXT.get(code, "see the findings' explanations")
