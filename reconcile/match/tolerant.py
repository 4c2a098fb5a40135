"""Pairing ledger rows that carry no usable id with logs, by what both say about the call.

A customer's own books rarely hold the gateway's log ids or request ids. Such a row is
paired with a log of the same type, token name and model (those the ledger has), the same
prompt and completion token counts when the row has them (else an amount within tolerance),
stamped within a window around the row's time: up to `tolerance.seconds` after it and
`EARLY` second before it, since the books' clock is the client's, which stamps the call
before the gateway logs it.

Decisions:
- one row to at most one log and one log to at most one row, closest time first: every
  candidate pair is ranked by (seconds apart, log stamped before the row, amounts
  disagree, row line, log position) and taken greedily in that order. The greedy runs as
  rounds of "mutual best" pairs, vectorised; it gives exactly the sequential greedy.
- candidates that fit a row equally well (same second), none with the row's amount, but
  with different amounts of their own make the row ambiguous (an error: whichever log it
  is, the amount is off): it is not paired, and the logs it could be are not reported
  missing on their own. Equally good candidates with the same amount (or all within
  tolerance) are interchangeable: the row takes the first in log order.
- a row left without a log whose best candidate went to an identical row (same keys, time
  and amount) is a duplicate of that row, not a row with no log.

Candidates come from one sort of the logs by (key, time) and two binary searches per row,
so the work grows with rows + logs + candidate pairs, never rows x logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reconcile.core.tolerance import within
from reconcile.match.common import BoolArray, IntArray
from reconcile.pricing.rules import Tolerance

#: How many seconds before the row's time a log may be stamped (clock rounding).
EARLY = 1
#: Vectorised rounds before the few pairs left are taken one by one.
MAX_ROUNDS = 64
#: Key codes are packed while their range stays below this, factorised beyond it.
PACKED = 2**40
#: Candidate pairs built at once (each costs some 60 bytes while it is judged).
CHUNK_PAIRS = 4_000_000


@dataclass
class Content:
    """What a side says about each call; `tokens` False where the counts are unknown."""

    keys: list[IntArray]  # codes of type, token name, model (equal value = equal code)
    prompt: IntArray
    completion: IntArray
    tokens: BoolArray
    time: IntArray
    quota: IntArray


@dataclass
class Pairing:
    """Per row: the log paired (-1 none), ambiguity, and duplicates; logs covered."""

    pos: IntArray
    ambiguous: BoolArray
    #: for each ambiguous row, the logs that fit it equally well
    candidates: dict[int, IntArray] = field(default_factory=dict)
    duplicate_of: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    covered: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    uses_tokens: BoolArray = field(default_factory=lambda: np.zeros(0, bool))


def _string_chunks(column: pd.Series) -> list[pa.Array]:
    """A column as Arrow string arrays (one frame concatenated from others holds several)."""
    arrow = pa.array(pd.Series(column, dtype="string"), type=pa.string())
    return list(arrow.chunks) if isinstance(arrow, pa.ChunkedArray) else [arrow]


def codes(*columns: pd.Series) -> list[IntArray]:
    """Each column's names as integer codes shared across the columns (NA and "" alike)."""
    chunks = [chunk for c in columns for chunk in _string_chunks(c)]
    joined = pc.fill_null(
        pc.utf8_trim_whitespace(pa.chunked_array(chunks, type=pa.string()).combine_chunks()), ""
    )
    code = np.asarray(
        pc.dictionary_encode(joined).indices.to_numpy(zero_copy_only=False), dtype=np.int64
    )
    out: list[IntArray] = []
    start = 0
    for c in columns:
        out.append(code[start : start + len(c)])
        start += len(c)
    return out


def pair(rows: Content, logs: Content, rounding: IntArray, tol: Tolerance) -> Pairing:
    """Pair rows with logs (positions into `logs`); see the module docstring."""
    n, m = len(rows.time), len(logs.time)
    empty = Pairing(
        pos=np.full(n, -1, dtype=np.int64),
        ambiguous=np.zeros(n, dtype=bool),
        duplicate_of=np.full(n, -1, dtype=np.int64),
        uses_tokens=rows.tokens.copy(),
    )
    if not n or not m:
        return empty
    base = _group(rows.keys, logs.keys)
    with_tokens = _group(
        [base[0], rows.prompt, rows.completion], [base[1], logs.prompt, logs.completion]
    )
    pr, pl, adt, before, mismatch = _fitting_pairs(rows, logs, rounding, tol, with_tokens, base)

    # Each row's candidates, best first: ambiguity and duplicates are read from this order.
    fit = (adt * 2 + before) * 2 + mismatch
    fits = int(fit.max()) + 1 if len(fit) else 1
    by_row = _order((pr, fit, pl), (n, fits, m))
    ambiguous, candidates = _ambiguity(
        pr[by_row], pl[by_row], adt[by_row], before[by_row], mismatch[by_row], logs.quota, n
    )
    rank = _order((fit, pr, pl), (fits, n, m))
    pos = _greedy(pr[rank], pl[rank], ~ambiguous[pr[rank]], n, m)
    owner = np.full(m, -1, dtype=np.int64)
    owner[pos[pos >= 0]] = np.flatnonzero(pos >= 0)
    first = by_row[np.unique(pr[by_row], return_index=True)[1]]
    duplicate_of = _duplicates(pr[first], pl[first], pos, owner, rows, with_tokens[0])
    taken = np.zeros(m, dtype=bool)
    taken[pos[pos >= 0]] = True
    maybe = np.concatenate(list(candidates.values())) if candidates else np.zeros(0, np.int64)
    covered = np.unique(maybe[~taken[maybe]]) if len(maybe) else maybe
    return Pairing(
        pos=pos,
        ambiguous=ambiguous,
        candidates=candidates,
        duplicate_of=duplicate_of,
        covered=covered.astype(np.int64),
        uses_tokens=rows.tokens.copy(),
    )


def _order(keys: tuple[IntArray, ...], sizes: tuple[int, ...]) -> IntArray:
    """The order sorting by `keys` (first most significant), each in [0, size): one argsort of
    the keys packed into an int64 when they fit, else a lexsort."""
    if not len(keys[0]):
        return np.zeros(0, dtype=np.int64)
    bits = [max(int(size - 1).bit_length(), 1) for size in sizes]
    if sum(bits) > 62:
        return np.lexsort(keys[::-1]).astype(np.int64)
    packed = np.zeros(len(keys[0]), dtype=np.int64)
    for key, width in zip(keys, bits, strict=True):
        packed = (packed << np.int64(width)) | key.astype(np.int64)
    return np.argsort(packed, kind="stable").astype(np.int64)


def _group(row_keys: list[IntArray], log_keys: list[IntArray]) -> tuple[IntArray, IntArray]:
    """One code per distinct key tuple, shared by rows and logs (not necessarily dense).

    Columns are packed arithmetically while the product of their ranges stays small, and
    factorised only when it would not: the usual keys (type, token, model, token counts)
    need one factorisation, not one per column.
    """
    n = len(row_keys[0])
    code = np.zeros(n + len(log_keys[0]), dtype=np.int64)
    size = 1
    for rk, lk in zip(row_keys, log_keys, strict=True):
        col = np.concatenate((rk, lk)).astype(np.int64)
        low = int(col.min()) if len(col) else 0
        width = int(col.max()) - low + 1 if len(col) else 1
        if size * width >= PACKED:
            code, size = _dense(code)
            if size * width >= PACKED:
                col, width = _dense(col)
                low = 0
        code = code * np.int64(width) + (col - low)
        size *= width
    if size >= 2**31:
        code, size = _dense(code)
    return code[:n], code[n:]


def _dense(values: IntArray) -> tuple[IntArray, int]:
    codes_, uniques = pd.factorize(values)
    return np.asarray(codes_, dtype=np.int64), max(len(uniques), 1)


def _fitting_pairs(
    rows: Content,
    logs: Content,
    rounding: IntArray,
    tol: Tolerance,
    with_tokens: tuple[IntArray, IntArray],
    base: tuple[IntArray, IntArray],
) -> tuple[IntArray, IntArray, IntArray, IntArray, IntArray]:
    """Candidate pairs (row, log, |dt|, log before row, amounts disagree), a chunk at a time.

    Rows without token counts keep only candidates whose amount agrees: with the amount a
    pairing key, a busy token and model cannot fill memory with pairs that cannot be.
    """
    out: list[tuple[IntArray, ...]] = []
    for use, (rg, lg) in ((rows.tokens, with_tokens), (~rows.tokens, base)):
        who = np.flatnonzero(use)
        if not len(who):
            continue
        for r, pl in _candidates(rg[who], rows.time[who], lg, logs.time, tol.seconds):
            pr = who[r]
            dt = logs.time[pl] - rows.time[pr]
            row_quota, log_quota = rows.quota[pr], logs.quota[pl]
            mismatch = (~within(row_quota, log_quota, tol, slack=rounding[pr])).astype(np.int64)
            keep = rows.tokens[pr] | (mismatch == 0)
            out.append(
                (
                    pr[keep],
                    pl[keep],
                    np.abs(dt)[keep],
                    (dt < 0).astype(np.int64)[keep],
                    mismatch[keep],
                )
            )
    if not out:
        nothing = np.zeros(0, dtype=np.int64)
        return nothing, nothing, nothing, nothing, nothing
    pr, pl, adt, before, mismatch = (np.concatenate(parts) for parts in zip(*out, strict=True))
    return pr, pl, adt, before, mismatch


def _candidates(
    row_group: IntArray, row_time: IntArray, log_group: IntArray, log_time: IntArray, late: int
) -> Iterator[tuple[IntArray, IntArray]]:
    """Every (row, log) with the same key and the log stamped in [t - EARLY, t + late], in
    chunks of about CHUNK_PAIRS pairs (row positions into `row_group`, log positions)."""
    early = min(EARLY, late)
    lo_t, hi_t = int(log_time.min()), int(log_time.max())
    # Rows far from every log cannot pair: clip them just outside the logs' span.
    origin = lo_t - late - 1
    t = np.clip(row_time, origin, hi_t + early + 1) - origin
    lt = log_time - origin
    span = hi_t - origin + late + early + 2
    groups = int(max(row_group.max(initial=0), log_group.max(initial=0))) + 1
    if groups * span >= 2**62:  # times too far apart to pack: rank them instead
        every = np.concatenate((lt, t - early, t + late))
        ranks = np.unique(every, return_inverse=True)[1].astype(np.int64)
        n = len(lt)
        lt, first, last = ranks[:n], ranks[n : n + len(t)], ranks[n + len(t) :]
        span = len(every)
    else:
        first, last = t - early, t + late
    log_key = log_group * np.int64(span) + lt
    order = np.argsort(log_key, kind="stable")
    sorted_key = log_key[order]
    lo = np.searchsorted(sorted_key, row_group * np.int64(span) + first, side="left")
    hi = np.searchsorted(sorted_key, row_group * np.int64(span) + last, side="right")
    counts = (hi - lo).astype(np.int64)
    ends = np.cumsum(counts)
    start = 0
    while start < len(counts):
        done = int(ends[start - 1]) if start else 0
        stop = max(int(np.searchsorted(ends, done + CHUNK_PAIRS, side="right")), start + 1)
        c = counts[start:stop]
        total = int(c.sum())
        row = np.repeat(np.arange(start, stop, dtype=np.int64), c)
        offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(c) - c, c)
        yield row, order[np.repeat(lo[start:stop], c) + offset].astype(np.int64)
        start = stop


def _ambiguity(
    pr: IntArray,
    pl: IntArray,
    adt: IntArray,
    before: IntArray,
    mismatch: IntArray,
    log_quota: IntArray,
    n: int,
) -> tuple[BoolArray, dict[int, IntArray]]:
    """Rows whose best candidates tie on fit but differ in amount (pairs sorted by row, fit)."""
    ambiguous = np.zeros(n, dtype=bool)
    if len(pr) < 2:
        return ambiguous, {}
    starts = np.flatnonzero(np.r_[True, pr[1:] != pr[:-1]])
    best = np.repeat(starts, np.diff(np.r_[starts, len(pr)]))
    tie = (adt == adt[best]) & (before == before[best]) & (mismatch == mismatch[best])
    differs = tie & (mismatch == 1) & (log_quota[pl] != log_quota[pl[best]])
    rows = np.unique(pr[differs])
    ambiguous[rows] = True
    candidates: dict[int, IntArray] = {}
    if len(rows):
        sel = tie & ambiguous[pr]
        for row, logs in pd.Series(pl[sel]).groupby(pr[sel], sort=True):
            candidates[int(row)] = logs.to_numpy(dtype=np.int64)
    return ambiguous, candidates


def _greedy(pr: IntArray, pl: IntArray, active: BoolArray, n: int, m: int) -> IntArray:
    """Take pairs in rank order while both sides are free (pairs given in rank order)."""
    pos = np.full(n, -1, dtype=np.int64)
    row_free = np.ones(n, dtype=bool)
    log_free = np.ones(m, dtype=bool)
    live = np.flatnonzero(active)
    for _ in range(MAX_ROUNDS):
        live = live[row_free[pr[live]] & log_free[pl[live]]]
        if not len(live):
            return pos
        r, lg = pr[live], pl[live]
        # A pair alone for its row and its log (most of them) is trivially its mutual best;
        # only the others need sorting to find each row's and each log's first pair.
        alone = (np.bincount(r, minlength=n)[r] == 1) & (np.bincount(lg, minlength=m)[lg] == 1)
        take = alone.copy()
        crowd = np.flatnonzero(~alone)
        if len(crowd):
            first_r = np.zeros(len(crowd), dtype=bool)
            first_r[np.unique(r[crowd], return_index=True)[1]] = True
            first_l = np.zeros(len(crowd), dtype=bool)
            first_l[np.unique(lg[crowd], return_index=True)[1]] = True
            take[crowd] = first_r & first_l  # the best of its row and of its log: greedy takes it
        pos[r[take]] = lg[take]
        row_free[r[take]] = False
        log_free[lg[take]] = False
    for i in live:  # long chains of near ties: finish one by one, in rank order
        row, log = int(pr[i]), int(pl[i])
        if row_free[row] and log_free[log]:
            pos[row] = log
            row_free[row] = False
            log_free[log] = False
    return pos


def _duplicates(
    row: IntArray, best_log: IntArray, pos: IntArray, owner: IntArray, rows: Content, key: IntArray
) -> IntArray:
    """For rows left unpaired: the row that took their best log, when it is identical."""
    out = np.full(len(pos), -1, dtype=np.int64)
    lost = pos[row] < 0
    row, best_log = row[lost], best_log[lost]
    other = owner[best_log]
    has = other >= 0
    row, other = row[has], other[has]
    same = (
        (key[row] == key[other])
        & (rows.time[row] == rows.time[other])
        & (rows.quota[row] == rows.quota[other])
    )
    out[row[same]] = other[same]
    return out
