"""The common case, vectorised: text and per-call logs, priced for a million logs at once.

Most consume logs are text (or per-call) logs whose `other` holds only the keys the one-pass
reader reads. For them the quota is computed in exact int64 arithmetic
(`reconcile.pricing.quota`), including (user group, using group) pairs and tiers by prompt
size, which are the same formula with other constants, and tool-call surcharges, added on
the same scale (`tools_fast`). A log whose `other` or `content` shows anything else the path
modules read (OFF_PATH_KEYS, CONTENT_MARKERS) is never settled here, even when its tokens'
price equals its charge; nor is a broken `other`, a count that is not a count, a charge
without tokens or a quota beyond int64. Those go to the tiers of their paths and, last, to
`reconcile.pricing.rowwise`, which prices any log exactly along its path and explains it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconcile.core.tolerance import within
from reconcile.pricing.other import (
    COMMON_BOOLS,
    COMMON_FLOATS,
    COMMON_STRINGS,
    OTHER_SEMANTIC,
    SEMANTICS,
    TOKEN_KEYS,
    UNREADABLE,
    OtherFields,
    key_pattern,
    matches,
    mentions,
)
from reconcile.pricing.paths import registry, tools
from reconcile.pricing.paths.tiered import KEYS as TIER_KEYS
from reconcile.pricing.quota import Combo, TokenColumns, quota_columns
from reconcile.pricing.rules import ModelRule, Rules
from reconcile.pricing.rules_paths import INT64_MAX, Tier
from reconcile.pricing.verdicts import MISMATCH, NOT_REPRICEABLE

if TYPE_CHECKING:  # columns.LogColumns holds this module's Combos
    from reconcile.pricing.columns import LogColumns

#: `other` keys that send a log down another path or add to its charge, as the path modules
#: declare them, except those the one-pass reader reads; tiered billing's keys are added,
#: which only a rule with tiers prices as text (`tiers_of`).
_OWN: Final = (*COMMON_FLOATS, *COMMON_STRINGS, *COMMON_BOOLS)
OFF_PATH_KEYS: Final = tuple(k for k in registry.MARKS if k not in (*_OWN, *TIER_KEYS))
OFF_PATH: Final = key_pattern((*OFF_PATH_KEYS, *TIER_KEYS))
_OFF_TIERS: Final = key_pattern(OFF_PATH_KEYS)
_OFF_CALLS: Final = key_pattern(k for k in (*OFF_PATH_KEYS, *TIER_KEYS) if k not in tools.CALL_KEYS)
#: `content` that marks another billing path: images (ImageHelper), tasks (LogTaskConsumption).
CONTENT_MARKERS: Final = registry.CONTENT_MARKS


class Combos:
    """The (rule, tier, group ratio) cases met, each with its exact constants.

    A case is a rule (or one of its tiers by prompt size) with a group: the group's own
    ratio, or a (user group, using group) pair's when the log shows one was used.
    """

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.items: list[Combo] = []
        self.pairs: list[Decimal] = []  # pair ratios in use, by index
        self.paired: set[int] = set()  # the cases priced with a pair's ratio
        self._index: dict[tuple[int, str, int, int], int] = {}

    def codes(
        self,
        rule_idx: npt.NDArray[np.int64],
        group: pd.Series,
        pair: npt.NDArray[np.int64] | None = None,
        tier: npt.NDArray[np.int64] | None = None,
    ) -> npt.NDArray[np.int64]:
        """The case index of every log (-1 where no rule applies). `pair`: index into
        `self.pairs` (-1: the group's ratio); `tier`: 1-based tier of the rule (0: none)."""
        n = len(rule_idx)
        out = np.full(n, -1, dtype=np.int64)
        priced = rule_idx >= 0
        if not priced.any():
            return out
        pair = np.full(n, -1, dtype=np.int64) if pair is None else pair
        tier = np.zeros(n, dtype=np.int64) if tier is None else tier
        gcodes, gnames = pd.factorize(group)
        # one int64 key per (rule, group, pair, tier): mixed-radix, every part >= 0
        parts = [rule_idx, gcodes, pair + 1, tier]
        key = np.zeros(n, dtype=np.int64)
        for part in parts:
            key = key * (int(part.max(initial=0)) + 1) + part
        local = pd.factorize(key[priced])[0]  # codes in order of first appearance
        top = np.maximum.accumulate(local)
        first_row = np.flatnonzero(priced)[np.flatnonzero(np.r_[True, top[1:] > top[:-1]])]
        mapping = np.array(
            [
                self._get(int(rule_idx[i]), str(gnames[gcodes[i]]), int(pair[i]), int(tier[i]))
                for i in first_row
            ],
            dtype=np.int64,
        )
        out[priced] = mapping[local]
        return out

    def _get(self, rule_index: int, group: str, pair: int, tier: int) -> int:
        key = (rule_index, group, pair, tier)
        if key not in self._index:
            rule = self.rules.models[rule_index]
            if tier > 0:
                rule = tier_rule(rule, rule.tiers[tier - 1])
            ratio = self.pairs[pair] if pair >= 0 else self.rules.group_ratio(group)
            self.items.append(
                Combo.build(rule_index, rule, group, ratio, self.rules.quota_per_unit)
            )
            self._index[key] = len(self.items) - 1
            if pair >= 0:
                self.paired.add(len(self.items) - 1)
        return self._index[key]

    def pair_index(
        self, group: pd.Series, used: npt.NDArray[np.float64], rows: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.int64]:
        """For logs whose `other` shows a (user group, using group) ratio was used: the
        contract's pair ratio for the using group closest to it (-1: none), as `assign`."""
        out = np.full(len(used), -1, dtype=np.int64)
        at = np.flatnonzero(rows & ~np.isnan(used) & (np.nan_to_num(used, nan=-1) >= 0))
        if not len(at) or not self.rules.group_pairs:
            return out
        keys = pd.DataFrame({"g": group.iloc[at].to_numpy(dtype=object), "u": used[at]})
        local = keys.groupby(["g", "u"], sort=False).ngroup().to_numpy()
        choice = []
        for g, u in keys.drop_duplicates(["g", "u"]).itertuples(index=False):
            candidates = self.rules.pair_ratios(str(g))
            if not candidates:
                choice.append(-1)
                continue
            want = Decimal(repr(float(u)))
            best = min(candidates, key=lambda p: abs(p - want))
            if best not in self.pairs:
                self.pairs.append(best)
            choice.append(self.pairs.index(best))
        out[at] = np.array(choice, dtype=np.int64)[local]
        return out


def tier_rule(rule: ModelRule, tier: Tier) -> ModelRule:
    """A rule with a tier's ratios (the 1h write ratio stays the rule's, as `paths.text`)."""
    return rule.model_copy(
        update={
            "model_ratio": tier.model_ratio,
            "completion_ratio": tier.completion_ratio
            if tier.completion_ratio is not None
            else rule.completion_ratio,
            "cache_ratio": tier.cache_ratio if tier.cache_ratio is not None else rule.cache_ratio,
            "cache_creation_ratio": tier.cache_creation_ratio
            if tier.cache_creation_ratio is not None
            else rule.cache_creation_ratio,
            "cache_creation_ratio_1h": rule.creation_ratio_1h,
            "tiers": [],
        }
    )


def tiers_of(
    rules: Rules, rule_idx: npt.NDArray[np.int64], tokens: TokenColumns
) -> npt.NDArray[np.int64]:
    """The 1-based tier of each log whose rule has tiers (0: none), by prompt size (prompt
    tokens, plus cache tokens under Anthropic usage), as `paths.text.pick_tier`."""
    out = np.zeros(len(rule_idx), dtype=np.int64)
    size = tokens.prompt + np.where(tokens.anthropic, tokens.cache + tokens.creation, 0)
    for r, rule in enumerate(rules.models):
        if not rule.tiers:
            continue
        rows = np.flatnonzero(rule_idx == r)
        bounds = [t.max_prompt_tokens or 2**62 for t in rule.tiers]
        at = np.searchsorted(np.array(bounds, dtype=np.int64), size[rows], side="left")
        out[rows] = np.minimum(at, len(bounds) - 1) + 1
    return out


@dataclass
class FastResult:
    decided: npt.NDArray[np.bool_]  # the logs this module gave a verdict
    status: npt.NDArray[np.int8]  # OK, MISMATCH or NOT_REPRICEABLE (alt semantics only)
    expected: npt.NDArray[np.int64]
    lifted: npt.NDArray[np.bool_]  # the minimum of 1 applied
    cached: npt.NDArray[np.bool_]  # cache reads or writes (path "cache")
    tokens: TokenColumns


def tokens_of(
    prompt: npt.NDArray[np.int64], completion: npt.NDArray[np.int64], other: OtherFields
) -> tuple[TokenColumns, npt.NDArray[np.bool_]]:
    """Token counts (absent = 0) and the logs whose `other` holds a count not whole >= 0."""
    counts: dict[str, npt.NDArray[np.int64]] = {}
    bad = np.zeros(len(prompt), dtype=bool)
    for key in TOKEN_KEYS:
        x = other.floats[key]
        present = ~np.isnan(x)
        if not present.any():  # the rarer counts, in most months: no log has them
            counts[key] = np.zeros(len(prompt), dtype=np.int64)
            continue
        wrong = present & ((x < 0) | (x > 2.0**53) | (x != np.floor(np.where(present, x, 0))))
        bad |= wrong
        counts[key] = np.where(present & ~wrong, x, 0).astype(np.int64)
    semantic = other.semantic
    anthropic = (semantic == 1 + SEMANTICS.index("anthropic")) | (
        (semantic == 0) & other.bools["claude"]
    )
    columns = TokenColumns(
        prompt=prompt,
        completion=completion,
        cache=counts["cache_tokens"],
        creation=counts["cache_creation_tokens"],
        creation_5m=counts["cache_creation_tokens_5m"],
        creation_1h=counts["cache_creation_tokens_1h"],
        image=counts["image_output"],
        anthropic=np.asarray(anthropic, dtype=bool),
    )
    return columns, bad


@dataclass
class Routes:
    """Which priced logs the vectorised formula may settle, and which need a closer look."""

    fast: npt.NDArray[np.bool_]
    tiered: npt.NDArray[np.intp]  # fast logs showing tiered billing (rules with tiers)
    tools: npt.NDArray[np.intp]  # not fast: text logs whose only other keys are tool calls


def off_path_marks(frame: pd.DataFrame) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Which logs' `content` (CONTENT_MARKERS) and which logs' `other` (OFF_PATH) mark
    another path: whole columns, text only, so the scan can run while `other` is parsed."""
    return matches(frame["content"], CONTENT_MARKERS), matches(frame["other"], OFF_PATH)


def fast_rows(
    cols: LogColumns,
    bad_tokens: npt.NDArray[np.bool_],
    odd: npt.NDArray[np.bool_],
    marks: tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]],
) -> Routes:
    """The priced logs the vectorised formula may settle (`odd`: logs it must not; `marks`:
    `off_path_marks`).

    A log whose `other` or `content` shows another path or a surcharge (OFF_PATH,
    CONTENT_MARKERS), or states its usage semantics in words other than the two it knows,
    goes to the tier of its path even when its tokens' price equals its charge."""
    frame, other, rule_idx = cols.frame, cols.other, cols.rule_idx
    in_content, in_other = marks
    out = (rule_idx >= 0) & (other.state != UNREADABLE) & ~bad_tokens & ~odd & ~in_content
    out &= other.semantic != OTHER_SEMANTIC
    marked = np.flatnonzero(out & in_other)
    off = mentions(frame["other"], marked, _OFF_TIERS)
    tiered = np.setdiff1d(marked, off)
    has_tiers = np.array([bool(r.tiers) for r in cols.rules.models] or [False])
    out[off] = False
    out[tiered[~has_tiers[rule_idx[tiered]]]] = False
    tools_only = np.setdiff1d(off, mentions(frame["other"], off, _OFF_CALLS))
    tiered = tiered[has_tiers[rule_idx[tiered]]].astype(np.intp)
    return Routes(out, tiered, tools_only.astype(np.intp))


def _subset(t: TokenColumns, rows: npt.NDArray[np.intp], **change: Any) -> TokenColumns:
    cols = {f: getattr(t, f)[rows] for f in TokenColumns.__dataclass_fields__}
    return TokenColumns(**(cols | change))


def price_fast(
    cols: LogColumns,
    tokens: TokenColumns,
    rows_mask: npt.NDArray[np.bool_],
    extra: npt.NDArray[np.int64] | None = None,
) -> FastResult:
    """Verdicts for `rows_mask` (plain text and per-call logs), as `paths` and `verdicts`
    would give them: round or (Anthropic usage, int() in older servers) floor accepted, and a
    cached log without a stated semantic whose charge only the Anthropic arithmetic explains
    is not re-priceable. `extra`: each log's surcharge, scaled by its combo's den
    (`tools_fast`), added before rounding."""
    quota, combo, items, rules = cols.quota, cols.combo, cols.combos.items, cols.rules
    # the log states its usage semantics
    semantic_said = np.asarray((cols.other.semantic != 0) | cols.other.bools["claude"])
    n = len(quota)
    expected = np.zeros(n, dtype=np.int64)
    lifted = np.zeros(n, dtype=bool)
    decided = np.zeros(n, dtype=bool)
    status = np.zeros(n, dtype=np.int8)
    cached = (tokens.cache > 0) | (tokens.creation > 0)
    result = FastResult(decided, status, expected, lifted, cached, tokens)
    if not items or not rows_mask.any():
        return result
    per_call = np.array([c.rule.per_call for c in items])[np.maximum(combo, 0)] & rows_mask
    call_quota = [c.per_call_quota for c in items]
    fits = np.array([abs(q) <= INT64_MAX for q in call_quota])[np.maximum(combo, 0)]
    call_rows = np.flatnonzero(per_call & fits)
    if len(call_rows):
        table = np.array([q if abs(q) <= INT64_MAX else 0 for q in call_quota], dtype=np.int64)
        expected[call_rows] = table[combo[call_rows]]
        used = (tokens.prompt + tokens.completion)[call_rows]
        nothing = (used == 0) & (quota[call_rows] == 0)
        expected[call_rows[nothing]] = 0
        decided[call_rows] = True
    by_tokens = np.flatnonzero(rows_mask & ~per_call)
    if len(by_tokens):
        add = None if extra is None else extra[by_tokens]
        q, lift, too_big = quota_columns(_subset(tokens, by_tokens), items, combo[by_tokens], add)
        expected[by_tokens] = np.where(too_big, 0, q)
        lifted[by_tokens] = lift & ~too_big
        decided[by_tokens] = ~too_big
    rows = np.flatnonzero(decided)
    agree = within(quota[rows], expected[rows], rules.tolerance)
    # Anthropic usage: older servers (PostClaudeConsumeQuota) truncate with int()
    retry = rows[~agree & tokens.anthropic[rows] & ~per_call[rows]]
    if len(retry):
        add = None if extra is None else extra[retry]
        low, _, big = quota_columns(_subset(tokens, retry), items, combo[retry], add, floor=True)
        ok = ~big & within(quota[retry], low, rules.tolerance)
        agree[np.searchsorted(rows, retry[ok])] = True
    status[rows[~agree]] = MISMATCH
    # a cached log that does not say its semantics: does only the Anthropic arithmetic fit?
    unsure = rows[~agree & cached[rows] & ~semantic_said[rows] & ~per_call[rows]]
    if len(unsure):
        sub = _subset(tokens, unsure, anthropic=np.ones(len(unsure), dtype=bool))
        add = None if extra is None else extra[unsure]
        alt, _, big = quota_columns(sub, items, combo[unsure], add)
        fit = ~big & (alt != expected[unsure]) & within(quota[unsure], alt, rules.tolerance)
        status[unsure[fit]] = NOT_REPRICEABLE
    return result
