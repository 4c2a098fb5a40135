"""Wording ledger findings: one explanation per finding, naming lines, logs and the key used.

Kept apart from the matching so that what is decided (match.ledger) reads without the
sentences, and the sentences can change without touching a decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from reconcile.core.period import Period
from reconcile.core.schema import (
    AMBIGUOUS_MATCH,
    AMOUNT_MISMATCH,
    CONSUME,
    DUPLICATE_LEDGER,
    ERROR,
    MISSING_IN_LEDGER,
    MISSING_IN_LOGS,
    REFUND,
    SEVERITY,
    TOPUP,
    TYPE_NAMES,
)
from reconcile.core.timefmt import iso_times
from reconcile.match.common import (
    BoolArray,
    IntArray,
    ObjArray,
    at_positions,
    first_present,
    int_or_na,
    object_texts,
    period_text,
    quota_text,
    signed,
)
from reconcile.match.tolerant import EARLY
from reconcile.pricing.rules import Tolerance

#: Effect of each log type on the key's balance, for comparing rows of different types.
DIRECTION = {CONSUME: -1, REFUND: 1, TOPUP: 1, ERROR: 0}
VERB = {CONSUME: "charged", REFUND: "refunded", TOPUP: "credited", ERROR: "logged"}
#: How many of an ambiguous row's candidate logs its explanation names.
SHOWN = 5


@dataclass
class Claims:
    """Which log each row claims, and by which key."""

    pos: IntArray  # claimed log position per row, -1 when none
    row_req: ObjArray
    key: IntArray  # rows claiming the same log share a key
    has_id: BoolArray  # claimed by its log_id
    dup: BoolArray
    matched_on: ObjArray  # log_id | request_id | tolerant
    candidates: dict[int, IntArray] = field(default_factory=dict)  # ambiguous rows' logs
    uses_tokens: BoolArray = field(default_factory=lambda: np.zeros(0, bool))
    content_keys: list[str] = field(default_factory=list)  # ledger columns content matched on


@dataclass
class LedgerWording:
    """What wording a ledger finding needs: the logs, the rows and who claims what."""

    logs: pd.DataFrame
    period: Period
    rows: pd.DataFrame
    claims: Claims
    log_ids: IntArray
    logs_have_request_ids: bool
    tolerance: Tolerance
    per_row: dict[str, IntArray]  # rtype, rquota, rtime, gtype, gquota, allowed

    def log_field(self, name: str, pos: IntArray) -> ObjArray:
        """A logs string column at `pos` (None where pos is -1), converting only those rows."""
        out = np.full(len(pos), None, dtype=object)
        has = pos >= 0
        if name in self.logs and has.any():
            out[has] = object_texts(self.logs[name].iloc[pos[has]], int(has.sum()))
        return out

    def row_field(self, name: str, idx: IntArray) -> ObjArray:
        if name not in self.rows:
            return np.full(len(idx), None, dtype=object)
        return object_texts(self.rows[name].iloc[idx], len(idx))

    def missing_in_ledger(self, idx: IntArray) -> pd.DataFrame:
        if not len(idx):
            return pd.DataFrame()
        types = self.logs["type"].to_numpy(dtype=np.int64)[idx]
        quota = self.logs["quota"].to_numpy(dtype=np.int64)[idx]
        times = iso_times(self.logs["created_at"].to_numpy(dtype=np.int64)[idx], self.period.tz)
        ids = self.log_ids[idx]
        names = [TYPE_NAMES.get(int(t), str(t)) for t in types]
        explanation = [
            f"gateway log {i} ({nm}, {quota_text(q)} quota at {t}) has no ledger row"
            for i, nm, q, t in zip(ids, names, quota, times, strict=True)
        ]
        none = np.zeros(len(idx), dtype=bool)
        return self._frame(
            MISSING_IN_LEDGER,
            log_id=int_or_na(ids, np.ones(len(idx), dtype=bool)),
            ledger_line=int_or_na(np.zeros(len(idx), np.int64), none),
            request_id=self.log_field("request_id", idx),
            created_at=times,
            type=names,
            token_name=self.log_field("token_name", idx),
            model_name=self.log_field("model_name", idx),
            group=self.log_field("group", idx),
            log_quota=quota,
            ledger_quota=int_or_na(np.zeros(len(idx), np.int64), none),
            diff_quota=quota,
            explanation=explanation,
            matched_on=np.full(len(idx), None, dtype=object),
        )

    def rows_finding(self, category: str, idx: IntArray) -> pd.DataFrame:
        """Findings about ledger rows `idx` (missing_in_logs, amount, duplicate, ...)."""
        if not len(idx):
            return pd.DataFrame()
        claims, per_row = self.claims, self.per_row
        log_pos = claims.pos[idx]
        has_log = log_pos >= 0
        has_id = claims.has_id[idx]
        ids = np.where(has_id, self._row_ids(idx), at_positions(self.log_ids, log_pos))
        row_quota, log_quota = per_row["rquota"][idx], per_row["gquota"][idx]
        rt, gt = per_row["rtype"][idx], per_row["gtype"][idx]
        lines = self.rows["line"].to_numpy(dtype=np.int64)[idx]
        row_times = iso_times(per_row["rtime"][idx], self.period.tz)
        log_time = self.logs["created_at"].to_numpy(dtype=np.int64)
        log_times = iso_times(
            np.where(has_log, at_positions(log_time, log_pos), per_row["rtime"][idx]),
            self.period.tz,
        )
        requests = first_present(self.log_field("request_id", log_pos), claims.row_req[idx])
        on = claims.matched_on[idx]
        refs = [
            self._ref(int(i), bool(h), bool(hl), r, str(o), rt_iso)
            for i, h, hl, r, o, rt_iso in zip(
                ids, has_id, has_log, requests, on, row_times, strict=True
            )
        ]
        rnames = [TYPE_NAMES.get(int(t), str(t)) for t in rt]
        diff = row_quota
        created = row_times
        if category == AMOUNT_MISMATCH:
            crossed = gt != rt
            effect = np.array(
                [DIRECTION.get(int(t), 0) for t in rt], dtype=np.int64
            ) * row_quota - (
                np.array([DIRECTION.get(int(t), 0) for t in gt], dtype=np.int64) * log_quota
            )
            diff = np.where(crossed, np.abs(effect), np.abs(row_quota - log_quota))
            explanation = [
                amount_text(ln, ref, int(x), int(y), int(r), int(g), bool(cr), int(al))
                for ln, ref, x, y, r, g, cr, al in zip(
                    lines,
                    refs,
                    row_quota,
                    log_quota,
                    rt,
                    gt,
                    crossed,
                    per_row["allowed"][idx],
                    strict=True,
                )
            ]
            created = log_times
        elif category == MISSING_IN_LOGS:
            explanation = [
                f"ledger line {ln} books a {nm} of {quota_text(x)} quota for {ref}, but the "
                f"gateway has no such log in the period{self._why_none(str(o), int(i))}"
                for ln, nm, x, ref, o, i in zip(
                    lines, rnames, row_quota, refs, on, idx, strict=True
                )
            ]
        elif category == DUPLICATE_LEDGER:
            firsts = self._first_lines(claims.key[idx])
            explanation = [
                f"ledger line {ln} claims {ref} again (first claimed on line {first}); its "
                f"{quota_text(x)} quota would be counted twice"
                for ln, ref, first, x in zip(lines, refs, firsts, row_quota, strict=True)
            ]
        elif category == AMBIGUOUS_MATCH:
            diff = np.array(
                [
                    self._least_difference(int(i), int(x))
                    for i, x in zip(idx, row_quota, strict=True)
                ],
                dtype=np.int64,
            )
            explanation = [
                self._ambiguous_text(int(i), int(ln), nm, int(x), iso, int(d))
                for i, ln, nm, x, iso, d in zip(
                    idx, lines, rnames, row_quota, row_times, diff, strict=True
                )
            ]
        else:
            explanation = [
                self._out_of_period_text(int(ln), ref, int(t), rt_iso, bool(hl), lt_iso, x)
                for ln, ref, t, rt_iso, hl, lt_iso, x in zip(
                    lines,
                    refs,
                    per_row["rtime"][idx],
                    row_times,
                    has_log,
                    log_times,
                    row_quota,
                    strict=True,
                )
            ]
        return self._frame(
            category,
            log_id=int_or_na(ids, has_id | has_log),
            ledger_line=lines,
            request_id=requests,
            created_at=created,
            type=rnames,
            token_name=first_present(
                self.log_field("token_name", log_pos), self.row_field("token_name", idx)
            ),
            model_name=first_present(
                self.log_field("model_name", log_pos), self.row_field("model_name", idx)
            ),
            group=self.log_field("group", log_pos),
            log_quota=int_or_na(log_quota, has_log),
            ledger_quota=row_quota,
            diff_quota=np.asarray(diff, dtype=np.int64),
            explanation=explanation,
            matched_on=on,
        )

    def _row_ids(self, idx: IntArray) -> IntArray:
        return np.asarray(
            self.rows["log_id"].to_numpy(dtype=np.int64, na_value=0)[idx], dtype=np.int64
        )

    def _ref(self, log_id: int, has_id: bool, has_log: bool, req: object, on: str, iso: str) -> str:
        if has_id or has_log:
            return f"log {log_id}"
        if on == "request_id":
            return f"request {req}"
        return f"the call at {iso}"

    def _keys_text(self, row: int) -> str:
        keys = ["type"] + [k.replace("_name", "") for k in self.claims.content_keys]
        if len(self.claims.uses_tokens) and self.claims.uses_tokens[row]:
            keys.append("token counts")
        else:
            keys.append("amount")
        return ", ".join(keys)

    def _window_text(self) -> str:
        early = min(EARLY, self.tolerance.seconds)
        return f"stamped {early} s before to {self.tolerance.seconds} s after the row"

    def _why_none(self, on: str, row: int) -> str:
        if on != "tolerant":
            return ""
        text = f": no unclaimed log has the same {self._keys_text(row)} {self._window_text()}"
        if not pd.isna(self.claims.row_req[row]) and not self.logs_have_request_ids:
            text += (
                " (its request_id cannot be used: the gateway's logs carry none, an older server?)"
            )
        return text

    def _least_difference(self, row: int, quota: int) -> int:
        """The least the row's amount is off by, whichever of its candidate logs it is."""
        logs = self.claims.candidates.get(row, np.zeros(0, dtype=np.int64))
        quotas = self.logs["quota"].to_numpy(dtype=np.int64)[logs]
        return int(np.abs(quotas - quota).min()) if len(quotas) else quota

    def _ambiguous_text(
        self, row: int, line: int, name: str, quota: int, iso: str, least: int
    ) -> str:
        logs = self.claims.candidates.get(row, np.zeros(0, dtype=np.int64))
        quotas = self.logs["quota"].to_numpy(dtype=np.int64)[logs]
        shown = ", ".join(
            f"log {int(i)} ({quota_text(q)})"
            for i, q in zip(self.log_ids[logs][:SHOWN], quotas[:SHOWN], strict=True)
        )
        more = f" and {len(logs) - SHOWN} more" if len(logs) > SHOWN else ""
        return (
            f"ledger line {line} books a {name} of {quota_text(quota)} quota at {iso} without "
            f"ids; {len(logs)} logs fit it equally well (same {self._keys_text(row)}, same "
            f"second), none with its amount: {shown}{more}. Whichever it is, the amounts "
            f"differ by at least {quota_text(least)}. Not paired: add log_id or request_id to "
            "the ledger to settle it"
        )

    def _first_lines(self, keys: IntArray) -> list[int]:
        keep = ~self.claims.dup
        line = self.rows["line"].to_numpy(dtype=np.int64)
        firsts = pd.Series(line[keep], index=self.claims.key[keep])
        at = firsts.index.get_indexer(pd.Index(keys))
        return [int(v) for v in firsts.to_numpy()[at]]

    def _out_of_period_text(
        self, line: int, ref: str, ts: int, iso: str, has_log: bool, log_iso: str, quota: int
    ) -> str:
        side = "before" if ts < self.period.start_ts else "after"
        text = (
            f"ledger line {line} is dated {iso}, {side} the period {period_text(self.period)}; "
            f"its {quota_text(quota)} quota for {ref} belongs to another period"
        )
        if has_log:
            text += (
                f"; yet the gateway logged {ref} at {log_iso}, inside the period "
                "(a booking date or clock difference?)"
            )
        return text

    def _frame(self, category: str, **columns: object) -> pd.DataFrame:
        n = len(columns["explanation"])  # type: ignore[arg-type]
        return pd.DataFrame(
            {
                "category": [category] * n,
                "severity": [SEVERITY[category]] * n,
                "source": ["ledger"] * n,
                **columns,
            }
        )


def amount_text(
    line: int,
    ref: str,
    ledger_q: int,
    log_q: int,
    rtype: int,
    gtype: int,
    crossed: bool,
    allowed: int,
) -> str:
    rname = TYPE_NAMES.get(rtype, str(rtype))
    if crossed:
        if gtype == ERROR:
            return (
                f"ledger line {line} books {ref} as a {rname} of {ledger_q:,} quota, but it is "
                "an error log on the gateway (not spend)"
            )
        gname = TYPE_NAMES.get(gtype, str(gtype))
        return (
            f"ledger line {line} books {ref} as a {rname} of {ledger_q:,} quota, but the gateway "
            f"logged a {gname} of {log_q:,}"
        )
    verb = VERB.get(gtype, "logged")
    return (
        f"ledger line {line} has {ledger_q:,} quota, gateway {verb} {log_q:,} for {ref} "
        f"({signed(log_q - ledger_q)}; tolerance {allowed:,})"
    )
