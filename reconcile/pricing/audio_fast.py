"""Token-priced audio logs, their arithmetic in int64 columns instead of Decimal per log.

`paths.audio.price_audio` (new-api's calculateAudioQuota):

    quota = (text_in + text_out x completion_ratio + audio_in x audio_ratio
             + audio_out x audio_ratio x audio_completion_ratio) x model_ratio x group_ratio

Each ratio is a decimal with few places, so with S = 10**D (D the most places among the
three token ratios) and 10**e making model_ratio x group_ratio whole, the quota is an integer
sum over 10**(D + e), rounded half away from zero by `quota.round_div`. Which path a log
takes is still decided per log by the path modules' own tests, in `assign._price`'s order
(`_routes_to_audio`), on `other` read with json.loads; only the arithmetic is in columns.
A log whose charge agrees is ok; every other (a mismatch, a count that is not a count,
constants or sums too large for int64, a per-call audio model) goes on to the row tier.
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
from reconcile.pricing.paths import audio
from reconcile.pricing.paths.base import BadField, Row
from reconcile.pricing.quota import places, round_div
from reconcile.pricing.rowwise import read_other
from reconcile.pricing.rules import Rules

#: `other` that may say audio (paths.audio.is_audio); over-matching costs only a parse.
AUDIO_OTHER: Final = key_pattern(audio.FLAGS) + r"\s*true"
_LIMIT: Final = float(2**62)


def price_audio_columns(
    rows: npt.NDArray[np.intp],
    frame: pd.DataFrame,
    quota: npt.NDArray[np.int64],
    prompt: npt.NDArray[np.int64],
    completion: npt.NDArray[np.int64],
    rule_idx: npt.NDArray[np.int64],
    other: OtherFields,
    rules: Rules,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64], list[str]]:
    """(the rows of `rows` that are agreeing audio logs, their expected quota, their paths)."""
    rows = rows[other.state[rows] != UNREADABLE]
    rows = mentions(frame["other"], rows, AUDIO_OTHER)
    texts = frame["other"].iloc[rows].tolist()
    contents = frame["content"].iloc[rows].tolist()
    groups = frame["group"].iloc[rows].tolist()
    take: list[int] = []
    counts: list[tuple[int, int, int, int]] = []
    consts: list[tuple[int, int, int, int, int, int, str]] = []
    memo: dict[tuple[int, str, object], tuple[int, int, int, int, int, int, str] | None] = {}
    for j, i in enumerate(rows.tolist()):
        obj, problem = read_other(None if pd.isna(texts[j]) else str(texts[j]))
        content = contents[j]
        group = "" if pd.isna(groups[j]) else str(groups[j])
        row = Row(0, 0, 0, "", group, "" if pd.isna(content) else str(content), obj)
        rule = rules.models[int(rule_idx[i])]
        if problem or route(row, rule) != paths.AUDIO or audio.KEYS_SET.isdisjoint(obj):
            continue
        try:
            split = tuple(row.count(k) for k in audio.KEYS)
        except BadField:
            continue
        key = (int(rule_idx[i]), group, row.number("user_group_ratio"))
        if key not in memo:
            memo[key] = _constants(row, key[0], rules)
        c = memo[key]
        if c is None:
            continue
        take.append(i)
        counts.append((split[0], split[1], split[2], split[3]))
        consts.append(c)
    if not take:
        return rows[:0], np.zeros(0, dtype=np.int64), []
    at = np.array(take, dtype=np.intp)
    n = np.array(counts, dtype=np.int64).T
    k = np.array([c[:6] for c in consts], dtype=np.int64).T
    scale, c_out, c_ain, c_aout, mult, den = k
    parts = (n[0] * scale, n[1] * c_out, n[2] * c_ain, n[3] * c_aout)
    estimate = sum(p.astype(np.float64) for p in parts)
    fits = (estimate < _LIMIT) & (estimate * mult.astype(np.float64) < _LIMIT)
    total = np.where(fits, parts[0] + parts[1] + parts[2] + parts[3], 0)
    used = (prompt[at] + completion[at] > 0) | (n.sum(axis=0) > 0)
    want = np.where(used, round_div(total * mult, den), 0)
    want = np.where(used & (mult != 0) & (want <= 0), 1, want)  # floor_one
    ok = fits & within(quota[at], want, rules.tolerance)
    labels = [c[6] for c, good in zip(consts, ok.tolist(), strict=True) if good]
    return at[ok], want[ok], labels


def _constants(
    row: Row, rule_index: int, rules: Rules
) -> tuple[int, int, int, int, int, int, str] | None:
    """(10**D, completion, audio, audio-out ratios x 10**D, model x group ratio x 10**e,
    10**(D + e), path) for a token-priced audio rule; None when the row tier must decide."""
    rule = rules.models[rule_index]
    terms = terms_for(row, rule, rules)
    if rule.model_price is not None or rule.audio_ratio is None or rule.model_ratio is None:
        return None
    with localcontext() as ctx:
        ctx.prec = 80
        out_ratio = rule.audio_completion_ratio
        ratios = (
            rule.completion_ratio,
            rule.audio_ratio,
            rule.audio_ratio * (Decimal(1) if out_ratio is None else out_ratio),
        )
        d = max(places(r) for r in ratios)
        m = rule.model_ratio * terms.group_ratio
        e = places(m)
        coef = [int(r * 10**d) for r in ratios]
        mult = int(m * 10**e)
    if d + e > 18 or mult >= 2**62 or any(c >= 2**62 for c in coef):
        return None
    path = paths.AUDIO + ("+" + paths.GROUP_PAIR if terms.pair else "")
    return (10**d, coef[0], coef[1], coef[2], mult, 10 ** (d + e), path)
