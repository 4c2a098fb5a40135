"""Which billing path a log took, which rule prices it, and the contract's terms for it.

Rules: the best pattern in effect at the log's time (an exact name, then longer globs).
Paths, first match wins, in `paths.registry.ROUTES` order: a task settlement (`other` has its
amounts), a task submission (`is_task`, or multipliers in `content`), tiered billing
(`billing_mode`/`matched_tier`), audio (`audio`/`ws`), an image (content "生成数量 n" on a
per-call rule), per call, text. Tool and audio-input surcharges add to the per-call and text
paths ("+tools"), and a (user group, using group) ratio is marked "+group_pair".
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconcile.pricing import paths
from reconcile.pricing.paths import call, registry, text, tools
from reconcile.pricing.paths.base import (
    OTHER_BAD_FIELD,
    BadField,
    BillingPath,
    Charge,
    Priced,
    Row,
    Terms,
    Unpriceable,
)
from reconcile.pricing.rules import ModelRule, Rules


def assign_rules(
    models: pd.Series, ts: npt.NDArray[np.int64], rules: Rules, tz: ZoneInfo
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Each log's rule index (-1: none): the best pattern among the rules in effect then,
    and whether any rule's pattern matches its model at all."""
    n = len(ts)
    rule_idx = np.full(n, -1, dtype=np.int64)
    has_candidates = np.zeros(n, dtype=bool)
    codes, names = pd.factorize(models)
    if n == 0 or not len(names):
        return rule_idx, has_candidates
    small = codes.astype(np.int16) if len(names) < 2**15 else codes  # numpy radix-sorts int16
    order = np.argsort(small, kind="stable")
    edges = np.searchsorted(codes[order], np.arange(len(names) + 1))
    position = {id(r): i for i, r in enumerate(rules.models)}
    for u, name in enumerate(names):
        candidates = rules.candidates(str(name)) if str(name) else []
        if not candidates:
            continue
        rows = order[edges[u] : edges[u + 1]]
        has_candidates[rows] = True
        local = np.full(len(rows), -1, dtype=np.int64)
        at = ts[rows]
        for rule in candidates:
            start, end = rule.bounds(tz)
            free = local < 0
            if start is not None:
                free &= at >= start
            if end is not None:
                free &= at < end
            local[free] = position[id(rule)]
        rule_idx[rows] = local
    return rule_idx, has_candidates


def terms_for(row: Row, rule: ModelRule, rules: Rules) -> Terms:
    """The contract's group ratio: a (user group, using group) pair's when the log shows the
    gateway used one and the rules have pairs for the using group, else the group's."""
    ratio = rules.group_ratio(row.group)
    used = row.number("user_group_ratio")
    if used is not None and used >= 0:
        pairs = rules.pair_ratios(row.group)
        if pairs:
            best = min(pairs, key=lambda p: abs(p - used))
            return Terms(rule, best, rules.quota_per_unit, pair=True)
    return Terms(rule, ratio, rules.quota_per_unit)


def route(row: Row, rule: ModelRule) -> BillingPath:
    """The path a log takes under `rule`: the first of `paths.registry.ROUTES` that takes it
    (text takes every log). A tiered log under a rule with tiers is priced as text."""
    for path in registry.ROUTES:
        if path.takes is not None and path.takes(row, rule):
            return path
    raise AssertionError("the text path takes every log")


def price(row: Row, terms: Terms) -> Priced:
    """The contract's charge for one log along its path (BadField: not re-priceable)."""
    try:
        priced = _price(row, terms)
    except BadField as exc:
        return Unpriceable(paths.UNKNOWN, OTHER_BAD_FIELD, str(exc))
    if terms.pair and isinstance(priced, Charge):
        return priced.on(priced.path + "+" + paths.GROUP_PAIR)
    return priced


def _price(row: Row, terms: Terms) -> Priced:
    rule = terms.rule
    taken = route(row, rule)
    if taken.price is not None:
        return taken.price(row, terms)
    path = taken.name
    extra = tools.extras(row, terms, path)
    if isinstance(extra, Unpriceable):
        return extra
    if rule.per_call:
        priced: Priced = call.price_call(row, terms, extra.quota)
    else:
        usage = text.usage_of(row, False, extra.audio_in)
        sem = text.semantics(row, usage)
        tier = None
        if rule.tiers:
            size = row.prompt + (usage.cache + usage.creation if sem.anthropic else 0)
            tier = text.pick_tier(rule, size)
        priced = text.price_text(row, terms, extra.quota, extra.audio_in, tier, sem, usage)
        if isinstance(priced, Charge) and tier is not None:
            priced = priced.on(paths.TIERED)
        if (
            isinstance(priced, Charge)
            and priced.exact == 0
            and row.quota != 0
            and row.prompt + row.completion == 0
        ):
            return Unpriceable(
                priced.path,
                text.CHARGED_WITHOUT_TOKENS,
                f"no tokens recorded, yet charged {row.quota:,} quota",
            )
    if extra.names and isinstance(priced, Charge):
        priced = priced.on(priced.path + "+" + paths.TOOLS)
    return priced
