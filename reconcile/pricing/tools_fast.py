"""Text logs with tool surcharges (web search...), their arithmetic in int64 columns.

`assign._price` prices such a log as `paths.text.price_text` plus `paths.tools.extras`, added
before rounding. Here the path, the usage, its semantics and the surcharge are still read
per log by those very functions (on `other` read with json.loads), and only the sum is in
columns: the text terms as `quota.Combo` scaled integers (as the vectorised text tier), the
surcharge scaled by the same 10**(D + e) when that makes it whole, then `quota.round_div`.
Only logs with OpenAI usage semantics, no tiers and no per-call rule are taken; a log whose
charge agrees is ok, every other goes on to the row tier (`rowwise`), which explains it.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconcile.core.tolerance import within
from reconcile.pricing import paths
from reconcile.pricing.assign import route, terms_for
from reconcile.pricing.other import UNREADABLE, OtherFields, key_pattern, mentions
from reconcile.pricing.paths import text, tools
from reconcile.pricing.paths.base import BadField, Row, Terms, Unpriceable
from reconcile.pricing.quota import COEFFICIENTS, Combo, round_div
from reconcile.pricing.rowwise import read_other
from reconcile.pricing.rules import Rules

#: `other` that may list a surcharge (paths.tools.calls); over-matching costs only a parse.
TOOLS_OTHER: Final = key_pattern(tools.KEYS)
_LIMIT: Final = float(2**62)


def price_tools_columns(
    rows: npt.NDArray[np.intp],
    frame: pd.DataFrame,
    quota: npt.NDArray[np.int64],
    prompt: npt.NDArray[np.int64],
    completion: npt.NDArray[np.int64],
    rule_idx: npt.NDArray[np.int64],
    other: OtherFields,
    rules: Rules,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64], list[str]]:
    """(the rows of `rows` that are agreeing text logs with surcharges, expected, paths)."""
    rows = rows[(other.state[rows] != UNREADABLE) & (prompt[rows] >= 0) & (completion[rows] >= 0)]
    rows = mentions(frame["other"], rows, TOOLS_OTHER)
    cols = {k: frame[k].iloc[rows].tolist() for k in ("other", "content", "group")}
    take: list[int] = []
    counts: list[list[int]] = []
    consts: list[tuple[int, ...]] = []
    labels: list[str] = []
    memo: dict[tuple[int, str, Decimal | None], tuple[Terms, Combo] | None] = {}
    with localcontext() as ctx:
        ctx.prec = 80  # as the row tier: every product of these magnitudes is exact
        for j, i in enumerate(rows.tolist()):
            obj, problem = read_other(_text(cols["other"][j]))
            group = _text(cols["group"][j]) or ""
            p, c = int(prompt[i]), int(completion[i])
            row = Row(0, p, c, "", group, _text(cols["content"][j]) or "", obj)
            if problem or p + c == 0:
                continue
            key = (int(rule_idx[i]), group, row.number("user_group_ratio"))
            if key not in memo:
                memo[key] = _constants(row, key[0], rules)
            found = memo[key]
            if found is None or route(row, found[0].rule) != paths.TEXT:
                continue
            terms, combo = found
            try:
                extra = tools.extras(row, terms, paths.TEXT)
                if isinstance(extra, Unpriceable) or not extra.names:
                    continue
                usage = text.usage_of(row, False, extra.audio_in)
            except BadField:
                continue
            sem = text.semantics(row, usage)
            if sem.anthropic or any(
                x.missing and getattr(terms.rule, x.rule_key) is None and x.count(usage)
                for x in text.COMPONENTS
            ):
                continue
            scaled = extra.quota * combo.den
            if scaled != scaled.to_integral_value() or abs(scaled) >= 2**62:
                continue
            take.append(i)
            counts.append([x.count(usage) for x in text.COMPONENTS])
            consts.append((*(combo.coef.get(k, 0) for k in COEFFICIENTS), combo.multiplier,
                           combo.den, int(scaled)))  # fmt: skip
            pair = "+" + paths.GROUP_PAIR if terms.pair else ""
            labels.append(f"{sem.path}+{paths.TOOLS}{pair}")
    if not take:
        return rows[:0], np.zeros(0, dtype=np.int64), []
    at = np.array(take, dtype=np.intp)
    n = np.array(counts, dtype=np.int64)
    k = np.array(consts, dtype=np.int64)
    width = len(COEFFICIENTS)
    coef, mult, den, extra_scaled = k[:, :width], k[:, width], k[:, width + 1], k[:, width + 2]
    estimate = (n.astype(np.float64) * coef.astype(np.float64)).sum(axis=1)
    big = estimate * mult.astype(np.float64) + np.abs(extra_scaled.astype(np.float64))
    fits = (estimate < _LIMIT) & (big < _LIMIT)
    total = np.where(fits[:, None], n * coef, 0).sum(axis=1)
    want = round_div(total * np.where(fits, mult, 0) + np.where(fits, extra_scaled, 0), den)
    want = np.where((mult != 0) & (want <= 0), 1, want)  # floor_one: tokens were used
    ok = fits & within(quota[at], want, rules.tolerance)
    return at[ok], want[ok], [x for x, good in zip(labels, ok.tolist(), strict=True) if good]


def _constants(row: Row, rule_index: int, rules: Rules) -> tuple[Terms, Combo] | None:
    """The terms and the scaled constants of a token-priced rule without tiers (else None)."""
    rule = rules.models[rule_index]
    if rule.per_call or rule.tiers or rule.model_ratio is None:
        return None
    terms = terms_for(row, rule, rules)
    combo = Combo.build(rule_index, rule, row.group, terms.group_ratio, rules.quota_per_unit)
    return (terms, combo) if combo.fits_int64 else None


def _text(v: object) -> str | None:
    return None if v is None or v is pd.NA or v != v else str(v)
