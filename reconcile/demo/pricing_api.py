"""The built-in gateway's `GET /api/pricing`: a rules file published the way new-api does.

new-api's controller/pricing.go (GetPricing) answers `{success, data: [model...],
group_ratio, usable_group, ...}`, each model with quota_type (0 ratio, 1 price),
model_ratio, model_price, completion_ratio, cache_ratio, create_cache_ratio, image_ratio,
audio_ratio, audio_completion_ratio, enable_groups and billing_mode. Ratios are float64 as
configured. Here the demo's contract is published, so `reconcile rules pull` against the
built-in gateway round-trips it.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any

from reconcile.pricing.rules import ModelRule, Rules, load_rules


def pricing_payload(rules: Rules, on: date | None = None) -> dict[str, Any]:
    """The /api/pricing answer for `rules`: the rule of each pattern in effect on `on`
    (None: the latest one), glob patterns published as their pattern."""
    chosen: dict[str, ModelRule] = {}
    for rule in rules.models:
        start = rule.effective_from or date.min
        end = rule.effective_to or date.max
        if on is not None and not (start <= on < end):
            continue
        best = chosen.get(rule.match)
        if best is None or (best.effective_from or date.min) < start:
            chosen[rule.match] = rule
    groups = {name: float(ratio) for name, ratio in rules.groups.items()} or {"default": 1.0}
    return {
        "success": True,
        "message": "",
        "data": [_model(rule, list(groups)) for rule in chosen.values()],
        "group_ratio": groups,
        "usable_group": {name: name for name in groups},
        "pricing_version": "demo",
    }


def _model(rule: ModelRule, groups: list[str]) -> dict[str, Any]:
    def f(d: Decimal | None) -> float:
        return float(d) if d is not None else 0.0

    per_call = rule.model_price is not None
    return {
        "model_name": rule.match,
        "quota_type": 1 if per_call else 0,
        "model_ratio": f(rule.model_ratio),
        "model_price": f(rule.model_price),
        "completion_ratio": f(rule.completion_ratio),
        "cache_ratio": f(rule.cache_ratio),
        "create_cache_ratio": f(rule.cache_creation_ratio),
        "image_ratio": f(rule.image_ratio),
        "audio_ratio": f(rule.audio_ratio),
        "audio_completion_ratio": f(rule.audio_completion_ratio),
        "enable_groups": groups,
        "billing_mode": "tiered_expr" if rule.tiers else "",
        "supported_endpoint_types": ["openai"],
    }


@cache
def demo_payload() -> dict[str, Any]:
    """The demo contract (reconcile/demo/data/rules.toml) as the demo gateway publishes it."""
    from reconcile.demo.run import FILES

    return pricing_payload(load_rules(FILES.rules))
