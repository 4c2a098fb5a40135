"""Token-priced audio logs, read and priced in columns instead of one Decimal per log.

`paths.audio.price_audio` (new-api's calculateAudioQuota):

    quota = (text_in + text_out x completion_ratio + audio_in x audio_ratio
             + audio_out x audio_ratio x audio_completion_ratio) x model_ratio x group_ratio

Each ratio (`audio.ratios`) is a decimal with few places, so with S = 10**D (D the most
places among them) and 10**e making model_ratio x group_ratio whole, the quota is an integer
sum over 10**(D + e), rounded half away from zero by `quota.round_div`. Taken here: logs whose
`other` says audio and shows no key of a path `assign.route` puts first (task, tiers) nor
task multipliers in `content`; their token split is read with pyarrow's JSON reader. A log
whose charge agrees is ok; every other (a mismatch, a count that is not a count, constants
or sums too large for int64, a per-call or tiered audio rule) goes on to the row tier.
"""

from __future__ import annotations

from decimal import localcontext
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from reconcile.core.tolerance import within
from reconcile.pricing import paths
from reconcile.pricing.columns import LogColumns
from reconcile.pricing.other import key_pattern, mentions, read_table
from reconcile.pricing.paths import audio, registry
from reconcile.pricing.quota import INT64_HEADROOM, Combo, places, round_div
from reconcile.pricing.rules import Rules

#: `other` that may say audio (paths.audio.is_audio); over-matching costs only a parse.
AUDIO_OTHER: Final = key_pattern(audio.FLAGS) + r"\s*true"
#: What `assign.route` tries before audio: a log with one of these is left to the row tier.
_BEFORE: Final = key_pattern(k for p in registry.ahead_of(audio.AUDIO) for k in p.marks)
_BEFORE_CONTENT: Final = "|".join(p.content for p in registry.ahead_of(audio.AUDIO) if p.content)
SCHEMA: Final = pa.schema(
    [(k, pa.bool_()) for k in audio.FLAGS] + [(k, pa.float64()) for k in audio.KEYS]
)


def price_audio_columns(
    rows: npt.NDArray[np.intp], cols: LogColumns
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64], list[str]]:
    """(the rows of `rows` that are agreeing audio logs, their expected quota, their paths).
    `rows`: priced logs whose `other` is readable."""
    none: tuple[npt.NDArray[np.intp], npt.NDArray[np.int64], list[str]] = (
        rows[:0],
        np.zeros(0, dtype=np.int64),
        [],
    )
    frame, combo, combos, rules = cols.frame, cols.combo, cols.combos, cols.rules
    rows = mentions(frame["other"], rows, AUDIO_OTHER)
    rows = np.setdiff1d(rows, mentions(frame["other"], rows, _BEFORE))
    rows = np.setdiff1d(rows, mentions(frame["content"], rows, _BEFORE_CONTENT))
    consts = [_constants(c, i in combos.paired, rules) for i, c in enumerate(combos.items)]
    known = np.array([c is not None for c in consts] or [False])
    rows = rows[known[combo[rows]]].astype(np.intp)
    table, read = read_table(frame["other"], rows, SCHEMA)
    if table is None:
        return none
    rows = rows[read]
    flags = [table.column(k).fill_null(False).to_numpy(zero_copy_only=False) for k in audio.FLAGS]
    counts = np.array(
        [table.column(k).to_numpy(zero_copy_only=False).astype(np.float64) for k in audio.KEYS]
    )
    seen = ~np.isnan(counts)
    n = np.where(seen, counts, 0)
    whole = ((n >= 0) & (n < 2.0**53) & (n == np.floor(n))).all(axis=0)
    good = np.logical_or.reduce(flags) & seen.any(axis=0) & whole
    rows, n = rows[good], n[:, good].astype(np.int64)
    k = np.array([consts[c][:6] for c in combo[rows]], dtype=np.int64).reshape(-1, 6).T
    scale, c_out, c_ain, c_aout, mult, den = k
    parts = (n[0] * scale, n[1] * c_out, n[2] * c_ain, n[3] * c_aout)
    estimate = sum(p.astype(np.float64) for p in parts)
    fits = (estimate < INT64_HEADROOM) & (estimate * mult.astype(np.float64) < INT64_HEADROOM)
    total = np.where(fits, parts[0] + parts[1] + parts[2] + parts[3], 0)
    use = cols.used[rows] | (n.sum(axis=0) > 0)
    want = np.where(use, round_div(total * mult, den), 0)
    want = np.where(use & (mult != 0) & (want <= 0), 1, want)  # floor_one
    ok = fits & within(cols.quota[rows], want, rules.tolerance)
    labels = [str(consts[c][6]) for c in combo[rows[ok]]]
    return rows[ok], want[ok], labels


def _constants(
    item: Combo, pair: bool, rules: Rules
) -> tuple[int, int, int, int, int, int, str] | None:
    """(10**D, completion, audio, audio-out ratios x 10**D, model x group ratio x 10**e,
    10**(D + e), path) for a token-priced audio rule; None when the row tier must decide."""
    rule = item.rule
    if rule.model_price is not None or rule.audio_ratio is None or rule.model_ratio is None:
        return None
    if rule.tiers or item.rule is not rules.models[item.rule_index]:
        return None  # a tier's ratios: the row tier decides
    with localcontext() as ctx:
        ctx.prec = 80
        ratios = audio.ratios(rule)[1:]
        d = max(places(r) for r in ratios)
        m = rule.model_ratio * item.group_ratio
        e = places(m)
        coef = [int(r * 10**d) for r in ratios]
        mult = int(m * 10**e)
    if d + e > 18 or mult >= 2**62 or any(c >= 2**62 for c in coef):
        return None
    path = paths.AUDIO + ("+" + paths.GROUP_PAIR if pair else "")
    return (10**d, coef[0], coef[1], coef[2], mult, 10 ** (d + e), path)
