"""Matching gateway logs against a ledger (one row per log).

Everything runs on int64 numpy arrays (searchsorted lookups, hashed duplicate checks, one
sort for pairing by content), so a million logs against a million ledger rows match in
seconds; Python runs only to word the findings.

Decisions where the contract is silent:
- each ledger row claims one log, by the first key it has that can be trusted: its log_id,
  when the gateway's ids are stable (ids numbered by position or `% 1024` name no log for
  good, so a ledger's log_ids are then not used at all); else its request_id, when the
  gateway's logs carry request ids; else its content (match.tolerant). Every finding says
  which key matched it (`matched_on`: log_id | request_id | tolerant).
- precedence, one category per row: a row claiming a log an earlier row (by line) already
  claimed is duplicate_ledger; else a row dated outside the period is out_of_period (even if
  its log is in the period, which the explanation then says, and that log is not also
  missing_in_ledger); else a row that several logs fit equally well is ambiguous_match; else
  a row whose log is not among the logs is missing_in_logs; else type and amount are compared.
- a row whose log has another type (booked as refund, logged as consume; or claiming an error
  log) is amount_mismatch, always, even for equal amounts. diff_quota is the difference of the
  balance effects: consume debits, refund and topup credit, an error log moves nothing.
- amounts agree when |ledger - log| <= max(tolerance.quota, tolerance.relative * max(both),
  the row's rounding allowance); the allowance covers ledgers that write currency amounts to
  a few decimals (half the last written decimal, in quota, plus half a quota).
- a spend log (consume, refund, topup) no ledger row claims is missing_in_ledger, zero-quota
  logs included; a log claimed only by an unreadable row, or one of the logs an ambiguous row
  could be, is left to that row's finding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from reconcile.core.period import Period
from reconcile.core.results import Ledger
from reconcile.core.schema import (
    AMBIGUOUS_MATCH,
    AMOUNT_MISMATCH,
    CONSUME,
    DUPLICATE_LEDGER,
    MISSING_IN_LOGS,
    OUT_OF_PERIOD,
    REFUND,
    TOPUP,
    findings_frame,
)
from reconcile.core.tolerance import abs_diff, allowance
from reconcile.match.common import BoolArray, IntArray, ObjArray, at_positions, lookup, object_texts
from reconcile.match.ledger_text import Claims, LedgerWording
from reconcile.match.tolerant import Content, Pairing, codes, pair
from reconcile.pricing.rules import Rules

SPEND_TYPES = (CONSUME, REFUND, TOPUP)
#: FetchResult.id_scheme values whose ids name one log for good.
STABLE = "stable"


def match_ledger(
    logs: pd.DataFrame,
    ledger: Ledger,
    period: Period,
    rules: Rules,
    id_scheme: str = STABLE,
    request_ids: bool | None = None,
) -> pd.DataFrame:
    """Findings of a ledger (one row per log) against the period's logs; see module docstring.

    `id_scheme` is the gateway's (FetchResult.id_scheme): log_ids are used only when "stable".
    `request_ids`: whether the period's logs carry request ids, when `logs` is one day of
    them (engines/partition.py); None: whether `logs` do.
    Unreadable ledger rows are not reported here: `problems.unreadable_findings` does that.
    """
    rows = ledger.rows.sort_values("line", kind="stable").reset_index(drop=True)
    n = len(rows)
    log_ids = logs["id"].to_numpy(dtype=np.int64)
    requests = _RequestIndex(logs)
    have_requests = requests.any if request_ids is None else request_ids
    ids_usable = id_scheme == STABLE
    order = np.argsort(log_ids, kind="stable").astype(np.int64)
    sorted_ids = log_ids[order]

    ids = rows["log_id"].to_numpy(dtype=np.int64, na_value=0)
    has_id = rows["log_id"].notna().to_numpy() & ids_usable
    row_req = (
        object_texts(rows["request_id"], n) if "request_id" in rows else np.full(n, None, object)
    )
    by_req = ~has_id & ~pd.isna(row_req) & have_requests
    by_content = ~has_id & ~by_req
    pos = np.full(n, -1, dtype=np.int64)
    pos[has_id] = lookup(sorted_ids, order, ids[has_id])
    if by_req.any():
        pos[by_req] = requests.lookup(row_req[by_req])

    log_types = logs["type"].to_numpy(dtype=np.int64)
    claimed = np.zeros(len(logs), dtype=bool)
    claimed[pos[pos >= 0]] = True
    if ids_usable:
        claimed[_unreadable_claims(ledger, sorted_ids, order, requests)] = True
    else:
        claimed[_unreadable_claims(ledger, sorted_ids[:0], order[:0], requests)] = True
    spend = np.isin(log_types, SPEND_TYPES)
    paired = _pair_by_content(rows, by_content, logs, spend & ~claimed, rules)
    pos[by_content] = paired.pos
    claimed[pos[pos >= 0]] = True
    claimed[paired.covered] = True

    key = _claim_keys(pos, ids, has_id, row_req, by_req, by_content, paired)
    content_at = np.flatnonzero(by_content)
    twice = paired.duplicate_of >= 0  # a copy of a row paired by content: the log it repeats
    pos[content_at[twice]] = pos[content_at[paired.duplicate_of[twice]]]
    rtype = rows["type"].to_numpy(dtype=np.int64)
    rquota = rows["quota"].to_numpy(dtype=np.int64)
    rtime = rows["created_at"].to_numpy(dtype=np.int64)
    rounding = (
        rows["rounding"].to_numpy(dtype=np.int64) if "rounding" in rows else np.zeros(n, np.int64)
    )
    ambiguous = np.zeros(n, dtype=bool)
    ambiguous[by_content] = paired.ambiguous

    dup = pd.Series(key).duplicated(keep="first").to_numpy()
    outside = (rtime < period.start_ts) | (rtime >= period.end_ts)
    oop = ~dup & outside
    rest = ~dup & ~outside
    unsure = rest & ambiguous
    nolog = rest & ~ambiguous & (pos < 0)
    matched = rest & (pos >= 0)
    gtype = at_positions(log_types, pos)
    gquota = at_positions(logs["quota"].to_numpy(dtype=np.int64), pos)
    type_diff = matched & (gtype != rtype)
    allowed = allowance(rquota, gquota, rules.tolerance, slack=rounding)
    amount_bad = matched & ~type_diff & (abs_diff(rquota, gquota) > allowed)

    matched_on = np.where(has_id, "log_id", np.where(by_req, "request_id", "tolerant"))
    wording = LedgerWording(
        logs=logs,
        period=period,
        rows=rows,
        claims=Claims(
            pos=pos,
            row_req=row_req,
            key=key,
            has_id=has_id,
            dup=dup,
            matched_on=np.asarray(matched_on, dtype=object),
            candidates=_row_candidates(paired, by_content),
            uses_tokens=_row_uses_tokens(paired, by_content, n),
            content_keys=content_keys(rows[by_content]),
        ),
        log_ids=log_ids,
        logs_have_request_ids=have_requests,
        tolerance=rules.tolerance,
        per_row={
            "rtype": rtype,
            "rquota": rquota,
            "rtime": rtime,
            "gtype": gtype,
            "gquota": gquota,
            "allowed": allowed,
        },
    )
    parts = [
        wording.missing_in_ledger(np.flatnonzero(spend & ~claimed)),
        wording.rows_finding(MISSING_IN_LOGS, np.flatnonzero(nolog)),
        wording.rows_finding(AMOUNT_MISMATCH, np.flatnonzero(amount_bad | type_diff)),
        wording.rows_finding(DUPLICATE_LEDGER, np.flatnonzero(dup)),
        wording.rows_finding(OUT_OF_PERIOD, np.flatnonzero(oop)),
        wording.rows_finding(AMBIGUOUS_MATCH, np.flatnonzero(unsure)),
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return findings_frame({"matched_on": pd.Series(dtype="string")})
    return findings_frame(pd.concat(parts, ignore_index=True))


def id_warnings(ledger: Ledger, id_scheme: str, logs_have_requests: bool) -> list[str]:
    """What a reviewer must know about the keys the ledger could not be matched on.

    `logs_have_requests`: whether any of the period's logs carries a request id."""
    rows = ledger.rows
    out: list[str] = []
    with_id = int(rows["log_id"].notna().sum()) if "log_id" in rows else 0
    if with_id and id_scheme != STABLE:
        scheme = "numbered by position" if id_scheme == "position" else "taken modulo 1024"
        out.append(
            f"ledger: the gateway's log ids are {scheme}, so they name no log for good: the "
            f"log_id of {with_id:,} ledger row(s) was not used; they were matched on "
            "request_id, else on token, model, type, token counts and time"
        )
    with_req = int(rows["request_id"].notna().sum()) if "request_id" in rows else 0
    if with_req and not logs_have_requests:
        out.append(
            f"ledger: the gateway's logs carry no request_id (an older server?): {with_req:,} "
            "row(s) with one were matched on token, model, type, token counts and time"
        )
    return out


def _pair_by_content(
    rows: pd.DataFrame, which: BoolArray, logs: pd.DataFrame, pool: BoolArray, rules: Rules
) -> Pairing:
    """Pair the `which` rows with the `pool` logs by content; positions are into `logs`."""
    sub = rows[which]
    pool_at = np.flatnonzero(pool)
    needed = ["type", "token_name", "model_name", "prompt_tokens", "completion_tokens"]
    lg = logs[[*needed, "created_at", "quota"]].iloc[pool_at]
    names = content_keys(sub)
    key_cols = [
        [sub["type"].to_numpy(dtype=np.int64), lg["type"].to_numpy(dtype=np.int64)],
        *(codes(sub[c], lg[c]) for c in names),
    ]
    prompt = _counts(sub, "prompt_tokens")
    completion = _counts(sub, "completion_tokens")
    row_side = Content(
        keys=[k[0] for k in key_cols],
        prompt=prompt[0],
        completion=completion[0],
        tokens=prompt[1] & completion[1],
        time=sub["created_at"].to_numpy(dtype=np.int64),
        quota=sub["quota"].to_numpy(dtype=np.int64),
    )
    log_side = Content(
        keys=[k[1] for k in key_cols],
        prompt=lg["prompt_tokens"].to_numpy(dtype=np.int64),
        completion=lg["completion_tokens"].to_numpy(dtype=np.int64),
        tokens=np.ones(len(lg), dtype=bool),
        time=lg["created_at"].to_numpy(dtype=np.int64),
        quota=lg["quota"].to_numpy(dtype=np.int64),
    )
    rounding = (
        sub["rounding"].to_numpy(dtype=np.int64)
        if "rounding" in sub
        else np.zeros(len(sub), np.int64)
    )
    found = pair(row_side, log_side, rounding, rules.tolerance)
    # no log left to pair: every row is unpaired (pool_at[0] below would not exist)
    at = pool_at[np.maximum(found.pos, 0)] if len(pool_at) else np.zeros(len(found.pos), np.int64)
    found.pos = np.where(found.pos >= 0, at, -1)
    found.covered = pool_at[found.covered]
    found.candidates = {r: pool_at[c] for r, c in found.candidates.items()}
    return found


def content_keys(rows: pd.DataFrame) -> list[str]:
    """The name columns rows are paired on besides type: those the rows fill at all."""
    return [c for c in ("token_name", "model_name") if c in rows and rows[c].notna().any()]


def _counts(rows: pd.DataFrame, name: str) -> tuple[IntArray, BoolArray]:
    if name not in rows:
        return np.full(len(rows), -1, dtype=np.int64), np.zeros(len(rows), dtype=bool)
    col = rows[name]
    return col.to_numpy(dtype=np.int64, na_value=-1), col.notna().to_numpy()


def _claim_keys(
    pos: IntArray,
    ids: IntArray,
    has_id: BoolArray,
    row_req: ObjArray,
    by_req: BoolArray,
    by_content: BoolArray,
    paired: Pairing,
) -> IntArray:
    """One key per row; rows claiming the same log share it (duplicates), others differ.

    A found log is its position (>= 0); a log_id or request_id not found is a negative code
    per distinct value; a content row left unpaired gets a code of its own, unless it is a
    duplicate of the row that took its log.
    """
    n = len(pos)
    key = np.full(n, -1, dtype=np.int64)
    key[pos >= 0] = pos[pos >= 0]
    next_code = 1
    for sel, values in ((has_id & (pos < 0), ids), (by_req & (pos < 0), row_req)):
        if sel.any():
            found, _ = pd.factorize(pd.Series(values[sel]).astype("string"))
            key[sel] = -(found.astype(np.int64) + next_code)
            next_code += int(found.max()) + 1
    content_at = np.flatnonzero(by_content)
    lost = content_at[paired.pos < 0]
    key[lost] = -(np.arange(len(lost), dtype=np.int64) + next_code)
    dup_of = paired.duplicate_of
    has_dup = dup_of >= 0
    key[content_at[has_dup]] = key[content_at[dup_of[has_dup]]]
    return key


def _row_candidates(paired: Pairing, by_content: BoolArray) -> dict[int, IntArray]:
    at = np.flatnonzero(by_content)
    return {int(at[r]): logs for r, logs in paired.candidates.items()}


def _row_uses_tokens(paired: Pairing, by_content: BoolArray, n: int) -> BoolArray:
    out = np.zeros(n, dtype=bool)
    out[by_content] = paired.uses_tokens
    return out


class _RequestIndex:
    """Log position by request id, built on first use (ledgers keyed by log_id never need it)."""

    def __init__(self, logs: pd.DataFrame) -> None:
        self._logs = logs
        self._index: pd.Series | None = None
        self.any = "request_id" in logs and bool(logs["request_id"].notna().any())

    def lookup(self, requests: ObjArray) -> IntArray:
        if not self.any or not len(requests):
            return np.full(len(requests), -1, dtype=np.int64)
        if self._index is None:
            reqs = object_texts(self._logs["request_id"], len(self._logs))
            has = ~pd.isna(reqs)
            ser = pd.Series(
                np.flatnonzero(has).astype(np.int64), index=pd.Index(reqs[has], dtype="string")
            )
            self._index = ser[~ser.index.duplicated(keep="first")]
        index = self._index
        at = np.asarray(index.index.get_indexer(pd.Index(requests, dtype="string")), np.int64)
        values = index.to_numpy(dtype=np.int64)
        return np.where(at >= 0, values[np.maximum(at, 0)], -1).astype(np.int64)


def _unreadable_claims(
    ledger: Ledger, sorted_ids: IntArray, order: IntArray, requests: _RequestIndex
) -> IntArray:
    """Logs the ids of unreadable rows name: their own findings cover them."""
    bad = ledger.unreadable
    if not len(bad):
        return np.zeros(0, dtype=np.int64)
    found: list[Any] = []
    if "log_id" in bad and len(sorted_ids):
        has = bad["log_id"].notna().to_numpy()
        ids = bad["log_id"].to_numpy(dtype=np.int64, na_value=0)[has]
        found.append(lookup(sorted_ids, order, ids))
    if "request_id" in bad:
        reqs = object_texts(bad["request_id"], len(bad))
        has_req = ~pd.isna(reqs)
        if "log_id" in bad and len(sorted_ids):
            has_req &= bad["log_id"].isna().to_numpy()
        found.append(requests.lookup(reqs[has_req]))
    allpos = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    return np.asarray(allpos[allpos >= 0], dtype=np.int64)
