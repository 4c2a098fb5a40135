"""The gateway's tiered billing expression (`billing_mode` tiered_expr, `matched_tier`).

new-api can price a model by an expression over its usage with tiers. The rules hold no such
expression: under a rule that gives tiers by prompt size (`[[model.tiers]]`), such a log is
priced as text with the tier its prompt falls in (`paths.text.pick_tier`, labelled `tiered`);
under a rule without tiers the rules cannot reproduce its charge.
"""

from __future__ import annotations

from typing import Final

from reconcile.pricing import paths
from reconcile.pricing.paths.base import BillingPath, Priced, Reason, Row, Terms, Unpriceable
from reconcile.pricing.rules import ModelRule

MODES: Final = ("tiered_expr", "tiered")
#: The `other` keys of the gateway's tiered billing.
KEYS: Final = ("billing_mode", "matched_tier")
EXPR: Final = Reason(
    "tiered_expr",
    "priced by the gateway's tiered billing expression, which the rules do not hold (give the "
    "rule tiers)",
)


def takes(row: Row, rule: ModelRule) -> bool:
    """A tiered log under a rule without tiers (under one with tiers it is priced as text)."""
    return not rule.tiers and (row.text("billing_mode") in MODES or "matched_tier" in row.other)


def price_tiered(row: Row, terms: Terms) -> Priced:
    matched = row.text("matched_tier")
    return Unpriceable(
        paths.TIERED,
        EXPR,
        f"priced by the gateway's tiered billing expression (tier {matched or '?'}), "
        "which the rules do not hold (give the rule tiers)",
    )


TIERED: Final = BillingPath(
    paths.TIERED, rule_keys=("tiers",), marks=KEYS, takes=takes, price=price_tiered, reasons=(EXPR,)
)
