"""Matching gateway logs against a ledger (one row per log) or an invoice (sums per key).

Everything runs on int64 numpy arrays (searchsorted lookups, hashed duplicate checks), so a
million logs against a million ledger rows match in seconds; Python runs only to word the
findings.

Ledger decisions where the contract is silent:
- each ledger row claims one log: by log_id, or by request_id (looked up in the logs' request
  ids) when the file has no log_id column or the row's log_id cell is empty.
- precedence, one category per row: a row claiming a log an earlier row (by line) already
  claimed is duplicate_ledger; else a row dated outside the period is out_of_period (even if
  its log is in the period, which the explanation then says, and that log is not also
  missing_in_ledger); else a row whose log is not among the logs is missing_in_logs; else
  type and amount are compared.
- a row whose log has another type (booked as refund, logged as consume; or claiming an error
  log) is amount_mismatch, always, even for equal amounts. diff_quota is the difference of the
  balance effects: consume debits, refund and topup credit, an error log moves nothing.
- amounts agree when |ledger - log| <= max(tolerance.quota, tolerance.relative * max(both),
  the row's rounding allowance); the allowance covers ledgers that write currency amounts to
  a few decimals (half the last written decimal, in quota, plus half a quota).
- a spend log (consume, refund, topup) no ledger row claims is missing_in_ledger, zero-quota
  logs included; a log claimed only by an unreadable row is left to that row's finding.

Invoice decisions:
- an invoice bills net consumption: per key, consume quota minus refund quota; topups are
  credit, not billed; error logs are not spend.
- keys are the columns the invoice has (model; model+day; model+token; model+day+token), days
  in the period's time zone; model and token names compare exactly, after trimming spaces.
- invoice lines with the same key are summed (one model billed over several lines), and the
  finding points at the first; lines dated outside the period are out_of_period each.
- a key with nothing at stake on one side (a log group netting to 0, an invoice line of 0)
  and nothing on the other is not a finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconcile.core.period import Period
from reconcile.core.results import Ledger
from reconcile.core.schema import (
    AMOUNT_MISMATCH,
    CONSUME,
    DUPLICATE_LEDGER,
    ERROR,
    MISSING_IN_LEDGER,
    MISSING_IN_LOGS,
    OUT_OF_PERIOD,
    REFUND,
    SEVERITY,
    TOPUP,
    TYPE_NAMES,
    findings_frame,
)
from reconcile.pricing.rules import Rules, Tolerance

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]

SPEND_TYPES = (CONSUME, REFUND, TOPUP)
#: Effect of each log type on the key's balance, for comparing rows of different types.
DIRECTION = {CONSUME: -1, REFUND: 1, TOPUP: 1, ERROR: 0}
VERB = {CONSUME: "charged", REFUND: "refunded", TOPUP: "credited", ERROR: "logged"}


# --------------------------------------------------------------------------- helpers


def allowance(a: IntArray, b: IntArray, rounding: IntArray, tol: Tolerance) -> IntArray:
    """max(tol.quota, floor(tol.relative * max(|a|,|b|)), rounding), exactly (no floats).

    Quotas are integers, so |a-b| <= relative * max(a, b) exactly when |a-b| <= its floor.
    """
    out = np.maximum(np.int64(tol.quota), np.asarray(rounding, dtype=np.int64))
    rel = Fraction(tol.relative)
    if rel > 0 and len(a):
        big = np.maximum(np.abs(a), np.abs(b))
        num, den = rel.numerator, rel.denominator
        if int(big.max()) * num < 2**62 and den < 2**62:
            part = big * np.int64(num) // np.int64(den)
        else:
            part = np.array([int(m) * num // den for m in big], dtype=np.int64)
        out = np.maximum(out, part)
    return np.asarray(out, dtype=np.int64)


def within_tolerance(a: IntArray, b: IntArray, rounding: IntArray, tol: Tolerance) -> BoolArray:
    """|a-b| <= max(tol.quota, tol.relative * max(|a|,|b|), rounding)."""
    return np.asarray(np.abs(a - b) <= allowance(a, b, rounding, tol), dtype=bool)


def lookup(sorted_keys: IntArray, order: IntArray, keys: IntArray) -> IntArray:
    """Row position (in the unsorted table) of each key, -1 where absent."""
    out = np.full(len(keys), -1, dtype=np.int64)
    if not len(sorted_keys) or not len(keys):
        return out
    at = np.searchsorted(sorted_keys, keys)
    at = np.minimum(at, len(sorted_keys) - 1)
    hit = sorted_keys[at] == keys
    out[hit] = order[at[hit]]
    return out


def iso_times(seconds: IntArray, period: Period) -> npt.NDArray[np.object_]:
    """ISO 8601 with offset in the period's time zone, e.g. 2026-10-05T13:45:00+08:00."""
    if not len(seconds):
        return np.array([], dtype=object)
    local = pd.to_datetime(seconds, unit="s", utc=True).tz_convert(period.tz)
    text = pd.Series(local.strftime("%Y-%m-%dT%H:%M:%S%z"), dtype=object)
    out = text.str[:-2] + ":" + text.str[-2:]
    return np.asarray(out, dtype=object)


def _q(value: object) -> str:
    return f"{int(value):,}"  # type: ignore[call-overload]


def _signed(value: int) -> str:
    return f"+{value:,}" if value > 0 else f"{value:,}"


def _period_text(period: Period) -> str:
    return f"[{period.start.isoformat()}, {period.end.isoformat()})"


def _strings(values: Any, n: int) -> npt.NDArray[np.object_]:
    if values is None:
        return np.full(n, None, dtype=object)
    arr = pd.array(values, dtype="string")
    return np.asarray(arr.to_numpy(dtype=object, na_value=None), dtype=object)


def _first(*arrays: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """Element-wise first non-missing value."""
    out = arrays[0].copy()
    for arr in arrays[1:]:
        gap = pd.isna(out)
        out[gap] = arr[gap]
    return out


def _gather(values: IntArray, pos: IntArray) -> IntArray:
    """values[pos], 0 where pos is -1 (also when `values` is empty)."""
    out = np.zeros(len(pos), dtype=np.int64)
    has = pos >= 0
    out[has] = values[pos[has]]
    return out


def _int_or_na(values: IntArray, has: BoolArray) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(np.asarray(values, dtype=np.int64), ~np.asarray(has, dtype=bool))


# --------------------------------------------------------------------------- ledger


def match_ledger(
    logs: pd.DataFrame,
    ledger: Ledger,
    period: Period,
    rules: Rules,
    request_ids: bool | None = None,
) -> pd.DataFrame:
    """Findings of a ledger (one row per log) against the period's logs; see module docstring.

    Unreadable ledger rows are not reported here: `ledger.unreadable_findings` does that.
    `request_ids`: whether the period's logs carry request ids, when `logs` is one day of
    them (engines/partition.py); None: whether `logs` do.
    """
    rows = ledger.rows.sort_values("line", kind="stable").reset_index(drop=True)
    n = len(rows)
    log_ids = logs["id"].to_numpy(dtype=np.int64)
    log_types = logs["type"].to_numpy(dtype=np.int64)
    log_quota = logs["quota"].to_numpy(dtype=np.int64)
    log_time = logs["created_at"].to_numpy(dtype=np.int64)
    order = np.argsort(log_ids, kind="stable").astype(np.int64)
    sorted_ids = log_ids[order]
    requests = _RequestIndex(logs)

    # Which log each row claims, and the key rows are grouped by for duplicates.
    ids = rows["log_id"].to_numpy(dtype=np.int64, na_value=0)
    has_id = rows["log_id"].notna().to_numpy()
    row_req = _strings(rows["request_id"], n) if "request_id" in rows else np.full(n, None, object)
    pos = np.full(n, -1, dtype=np.int64)
    pos[has_id] = lookup(sorted_ids, order, ids[has_id])
    by_req = ~has_id & ~pd.isna(row_req)
    if by_req.any():
        pos[by_req] = requests.lookup(row_req[by_req])
    key = np.where(has_id, ids, 0)
    resolved = by_req & (pos >= 0)
    key[resolved] = log_ids[pos[resolved]]
    unresolved = by_req & (pos < 0)
    if unresolved.any():
        codes, _ = pd.factorize(pd.Series(row_req[unresolved], dtype="string"))
        key[unresolved] = -(codes.astype(np.int64) + 1)

    line = rows["line"].to_numpy(dtype=np.int64)
    rtype = rows["type"].to_numpy(dtype=np.int64)
    rquota = rows["quota"].to_numpy(dtype=np.int64)
    rtime = rows["created_at"].to_numpy(dtype=np.int64)
    rounding = (
        rows["rounding"].to_numpy(dtype=np.int64) if "rounding" in rows else np.zeros(n, np.int64)
    )

    dup = pd.Series(key).duplicated(keep="first").to_numpy()
    outside = (rtime < period.start_ts) | (rtime >= period.end_ts)
    oop = ~dup & outside
    rest = ~dup & ~outside
    nolog = rest & (pos < 0)
    matched = rest & (pos >= 0)
    gtype = _gather(log_types, pos)
    gquota = _gather(log_quota, pos)
    type_diff = matched & (gtype != rtype)
    allowed = allowance(rquota, gquota, rounding, rules.tolerance)
    amount_bad = matched & ~type_diff & (np.abs(rquota - gquota) > allowed)

    # Logs nobody claims (unreadable rows' ids count as claims: their finding covers them).
    claimed = np.zeros(len(logs), dtype=bool)
    claimed[pos[pos >= 0]] = True
    claimed[_unreadable_claims(ledger, sorted_ids, order, requests)] = True
    spend = np.isin(log_types, SPEND_TYPES)
    missing = np.flatnonzero(spend & ~claimed)

    ctx = _LedgerContext(
        logs=logs,
        period=period,
        rows=rows,
        pos=pos,
        row_req=row_req,
        key=key,
        line=line,
        has_id=has_id,
        dup=dup,
        log_ids=log_ids,
        logs_have_request_ids=requests.any if request_ids is None else request_ids,
    )
    per_row = {
        "rtype": rtype,
        "rquota": rquota,
        "rtime": rtime,
        "gtype": gtype,
        "gquota": gquota,
        "log_time": log_time,
        "allowed": allowed,
    }
    parts = [
        ctx.missing_in_ledger(missing, log_types, log_quota, log_time),
        ctx.rows_finding(MISSING_IN_LOGS, np.flatnonzero(nolog), **per_row),
        ctx.rows_finding(AMOUNT_MISMATCH, np.flatnonzero(amount_bad | type_diff), **per_row),
        ctx.rows_finding(DUPLICATE_LEDGER, np.flatnonzero(dup), **per_row),
        ctx.rows_finding(OUT_OF_PERIOD, np.flatnonzero(oop), **per_row),
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return findings_frame({})
    return findings_frame(pd.concat(parts, ignore_index=True))


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
            reqs = _strings(self._logs["request_id"], len(self._logs))
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
    bad = ledger.unreadable
    if not len(bad):
        return np.zeros(0, dtype=np.int64)
    found: list[IntArray] = []
    if "log_id" in bad:
        has = bad["log_id"].notna().to_numpy()
        ids = bad["log_id"].to_numpy(dtype=np.int64, na_value=0)[has]
        found.append(lookup(sorted_ids, order, ids))
    if "request_id" in bad:
        reqs = _strings(bad["request_id"], len(bad))
        has_req = ~pd.isna(reqs)
        if "log_id" in bad:
            has_req &= bad["log_id"].isna().to_numpy()
        found.append(requests.lookup(reqs[has_req]))
    allpos = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    return allpos[allpos >= 0]


@dataclass
class _LedgerContext:
    """What wording a ledger finding needs: the logs, the rows and who claims what."""

    logs: pd.DataFrame
    period: Period
    rows: pd.DataFrame
    pos: IntArray  # claimed log position per row, -1 when none
    row_req: ObjArray
    key: IntArray
    line: IntArray
    has_id: BoolArray
    dup: BoolArray
    log_ids: IntArray
    logs_have_request_ids: bool

    def log_field(self, name: str, pos: IntArray) -> ObjArray:
        """A logs string column at `pos` (None where pos is -1), converting only those rows."""
        out = np.full(len(pos), None, dtype=object)
        has = pos >= 0
        if name in self.logs and has.any():
            out[has] = _strings(self.logs[name].iloc[pos[has]], int(has.sum()))
        return out

    def row_field(self, name: str, idx: IntArray) -> ObjArray:
        if name not in self.rows:
            return np.full(len(idx), None, dtype=object)
        return _strings(self.rows[name].iloc[idx], len(idx))

    def missing_in_ledger(
        self, idx: IntArray, log_types: IntArray, log_quota: IntArray, log_time: IntArray
    ) -> pd.DataFrame:
        if not len(idx):
            return pd.DataFrame()
        types = log_types[idx]
        quota = log_quota[idx]
        times = iso_times(log_time[idx], self.period)
        ids = self.log_ids[idx]
        names = [TYPE_NAMES.get(int(t), str(t)) for t in types]
        explanation = [
            f"gateway log {i} ({nm}, {_q(q)} quota at {t}) has no ledger row"
            for i, nm, q, t in zip(ids, names, quota, times, strict=True)
        ]
        return self._frame(
            MISSING_IN_LEDGER,
            log_id=_int_or_na(ids, np.ones(len(idx), dtype=bool)),
            ledger_line=_int_or_na(np.zeros(len(idx), np.int64), np.zeros(len(idx), bool)),
            request_id=self.log_field("request_id", idx),
            created_at=times,
            type=names,
            token_name=self.log_field("token_name", idx),
            model_name=self.log_field("model_name", idx),
            group=self.log_field("group", idx),
            log_quota=quota,
            ledger_quota=_int_or_na(np.zeros(len(idx), np.int64), np.zeros(len(idx), bool)),
            diff_quota=quota,
            explanation=explanation,
        )

    def rows_finding(
        self,
        category: str,
        idx: IntArray,
        *,
        rtype: IntArray,
        rquota: IntArray,
        rtime: IntArray,
        gtype: IntArray,
        gquota: IntArray,
        log_time: IntArray,
        allowed: IntArray,
    ) -> pd.DataFrame:
        """Findings about ledger rows `idx` (missing_in_logs, amount, duplicate, out of period)."""
        if not len(idx):
            return pd.DataFrame()
        p = self.pos[idx]
        has_log = p >= 0
        has_id = self.has_id[idx]
        ids = np.where(has_id, self.key[idx], _gather(self.log_ids, p))
        a = rquota[idx]
        b = gquota[idx]
        rt = rtype[idx]
        gt = gtype[idx]
        lines = self.line[idx]
        row_times = iso_times(rtime[idx], self.period)
        log_times = iso_times(np.where(has_log, _gather(log_time, p), rtime[idx]), self.period)
        requests = _first(self.log_field("request_id", p), self.row_req[idx])
        refs = [
            f"log {i}" if h or hl else f"request {r}"
            for i, h, hl, r in zip(ids, has_id, has_log, requests, strict=True)
        ]
        rnames = [TYPE_NAMES.get(int(t), str(t)) for t in rt]
        if category == AMOUNT_MISMATCH:
            crossed = gt != rt
            effect = np.array([DIRECTION.get(int(t), 0) for t in rt], dtype=np.int64) * a - (
                np.array([DIRECTION.get(int(t), 0) for t in gt], dtype=np.int64) * b
            )
            diff = np.where(crossed, np.abs(effect), np.abs(a - b))
            explanation = [
                _amount_text(ln, ref, int(x), int(y), int(r), int(g), bool(c), int(al))
                for ln, ref, x, y, r, g, c, al in zip(
                    lines, refs, a, b, rt, gt, crossed, allowed[idx], strict=True
                )
            ]
            created = log_times
        else:
            diff = a
            created = row_times
            if category == MISSING_IN_LOGS:
                why = ""
                if not self.logs_have_request_ids:
                    why = " (the gateway's logs carry no request_id: an older server?)"
                explanation = [
                    f"ledger line {ln} books a {nm} of {_q(x)} quota for {ref}, but the gateway "
                    f"has no such log in the period" + (why if ref.startswith("request") else "")
                    for ln, nm, x, ref in zip(lines, rnames, a, refs, strict=True)
                ]
            elif category == DUPLICATE_LEDGER:
                firsts = self._first_lines(self.key[idx])
                explanation = [
                    f"ledger line {ln} claims {ref} again (first claimed on line {f}); its "
                    f"{_q(x)} quota would be counted twice"
                    for ln, ref, f, x in zip(lines, refs, firsts, a, strict=True)
                ]
            else:
                explanation = [
                    self._out_of_period_text(int(ln), ref, int(t), rt_iso, bool(hl), lt_iso, x)
                    for ln, ref, t, rt_iso, hl, lt_iso, x in zip(
                        lines, refs, rtime[idx], row_times, has_log, log_times, a, strict=True
                    )
                ]
        return self._frame(
            category,
            log_id=_int_or_na(ids, has_id | has_log),
            ledger_line=lines,
            request_id=requests,
            created_at=created,
            type=rnames,
            token_name=_first(self.log_field("token_name", p), self.row_field("token_name", idx)),
            model_name=_first(self.log_field("model_name", p), self.row_field("model_name", idx)),
            group=self.log_field("group", p),
            log_quota=_int_or_na(b, has_log),
            ledger_quota=a,
            diff_quota=np.asarray(diff, dtype=np.int64),
            explanation=explanation,
        )

    def _first_lines(self, keys: IntArray) -> list[int]:
        firsts = pd.Series(self.line[~self.dup], index=self.key[~self.dup])
        at = firsts.index.get_indexer(pd.Index(keys))
        return [int(v) for v in firsts.to_numpy()[at]]

    def _out_of_period_text(
        self, line: int, ref: str, ts: int, iso: str, has_log: bool, log_iso: str, quota: int
    ) -> str:
        side = "before" if ts < self.period.start_ts else "after"
        text = (
            f"ledger line {line} is dated {iso}, {side} the period {_period_text(self.period)}; "
            f"its {_q(quota)} quota for {ref} belongs to another period"
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


def _amount_text(
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
        f"({_signed(log_q - ledger_q)}; tolerance {allowed:,})"
    )


# --------------------------------------------------------------------------- invoice

_EPOCH = date(1970, 1, 1)


def match_invoice(
    logs: pd.DataFrame, invoice: Ledger, period: Period, rules: Rules
) -> pd.DataFrame:
    """Findings of an invoice (net consume per key) against the period's logs.

    Unreadable invoice rows are not reported here: `ledger.unreadable_findings` does that.
    """
    rows = invoice.rows
    by_day, by_token = _invoice_keys(invoice)
    keys = ["model"] + (["day"] if by_day else []) + (["token"] if by_token else [])
    inv = pd.DataFrame(
        {
            "line": rows["line"].to_numpy(dtype=np.int64),
            "model": _names(rows["model_name"]),
            "quota": rows["quota"].to_numpy(dtype=np.int64),
            "rounding": (
                rows["rounding"].to_numpy(dtype=np.int64)
                if "rounding" in rows
                else np.zeros(len(rows), np.int64)
            ),
        }
    )
    first_day, end_day = _period_days(period)
    oop = np.zeros(len(inv), dtype=bool)
    if by_day:
        days = pd.to_datetime(rows["date"].astype("string"), format="%Y-%m-%d")
        inv["day"] = np.asarray(days.to_numpy().astype("datetime64[D]").astype(np.int64))
        oop = ((inv["day"] < first_day) | (inv["day"] >= end_day)).to_numpy()
    if by_token:
        inv["token"] = _names(rows["token_name"])

    spend = logs["type"].isin([CONSUME, REFUND]).to_numpy()
    types = logs["type"].to_numpy(dtype=np.int64)[spend]
    quota = logs["quota"].to_numpy(dtype=np.int64)[spend]
    lg = pd.DataFrame(
        {
            "model": _names(logs["model_name"][spend]),
            "net": np.where(types == CONSUME, quota, -quota),
            "consumes": (types == CONSUME).astype(np.int64),
            "refunds": (types == REFUND).astype(np.int64),
        }
    )
    if by_day:
        local = pd.to_datetime(
            logs["created_at"].to_numpy(dtype=np.int64)[spend], unit="s", utc=True
        ).tz_convert(period.tz)
        lg["day"] = local.tz_localize(None).to_numpy().astype("datetime64[D]").astype(np.int64)
    if by_token:
        lg["token"] = _names(logs["token_name"][spend])
    billed = lg.groupby(keys, sort=False).agg(
        net=("net", "sum"), consumes=("consumes", "sum"), refunds=("refunds", "sum")
    )
    inside = inv[~oop]
    lines = inside.groupby(keys, sort=False).agg(
        quota=("quota", "sum"), rounding=("rounding", "sum"), line=("line", "min")
    )
    lines["all_lines"] = inside.groupby(keys, sort=False)["line"].agg(list)
    merged = lines.join(billed, how="outer").reset_index()
    has_line = merged["line"].notna().to_numpy()
    has_logs = merged["net"].notna().to_numpy()
    a = merged["quota"].fillna(0).to_numpy(dtype=np.int64)
    b = merged["net"].fillna(0).to_numpy(dtype=np.int64)
    allowed = allowance(
        a, b, merged["rounding"].fillna(0).to_numpy(dtype=np.int64), rules.tolerance
    )
    both = has_line & has_logs
    mismatch = both & (np.abs(a - b) > allowed)
    only_line = has_line & ~has_logs & (a != 0)
    only_logs = has_logs & ~has_line & (b != 0)

    out: list[dict[str, object]] = []
    for i in np.flatnonzero(mismatch | only_line | only_logs):
        rec = merged.iloc[int(i)]
        key_text = _key_text(rec, by_day, by_token)
        consumes = int(rec["consumes"]) if has_logs[i] else 0
        refunds = int(rec["refunds"]) if has_logs[i] else 0
        lines_text = _lines_text(rec["all_lines"]) if has_line[i] else ""
        if mismatch[i]:
            category, diff = AMOUNT_MISMATCH, abs(int(a[i] - b[i]))
            text = (
                f"{lines_text} bill{'s' if len(rec['all_lines']) == 1 else ''} {key_text} "
                f"{a[i]:,} quota; the gateway logs net {b[i]:,} ({consumes:,} consume, "
                f"{refunds:,} refund logs) ({_signed(int(b[i] - a[i]))}; tolerance {allowed[i]:,})"
            )
        elif only_line[i]:
            category, diff = MISSING_IN_LOGS, abs(int(a[i]))
            text = (
                f"{lines_text} bill{'s' if len(rec['all_lines']) == 1 else ''} {key_text} "
                f"{a[i]:,} quota, but the gateway has no consume or refund logs for it "
                "in the period"
            )
        else:
            category, diff = MISSING_IN_LEDGER, abs(int(b[i]))
            text = (
                f"the gateway logs net {b[i]:,} quota for {key_text} ({consumes:,} consume, "
                f"{refunds:,} refund logs), but no invoice line bills it"
            )
        out.append(
            _invoice_finding(
                category,
                rec,
                by_day,
                by_token,
                line=int(rec["line"]) if has_line[i] else None,
                log_quota=int(b[i]) if has_logs[i] else None,
                invoice_quota=int(a[i]) if has_line[i] else None,
                diff=diff,
                explanation=text,
            )
        )
    for i in np.flatnonzero(oop):
        rec = inv.iloc[int(i)]
        day = _day_text(int(rec["day"]))
        side = "before" if int(rec["day"]) < first_day else "after"
        out.append(
            _invoice_finding(
                OUT_OF_PERIOD,
                rec,
                by_day,
                by_token,
                line=int(rec["line"]),
                log_quota=None,
                invoice_quota=int(rec["quota"]),
                diff=abs(int(rec["quota"])),
                explanation=(
                    f"invoice line {int(rec['line'])} bills {_key_text(rec, False, by_token)} "
                    f"on {day}, {side} the period {_period_text(period)}: "
                    f"{int(rec['quota']):,} quota billed for another period"
                ),
            )
        )
    if not out:
        return findings_frame({})
    return findings_frame(pd.DataFrame(out))


def _invoice_keys(invoice: Ledger) -> tuple[bool, bool]:
    """(by day, by token): from the columns the loader found, else from the rows."""
    parts = invoice.match_key.split("+")
    if "model_name" in parts:
        return "date" in parts, "token_name" in parts
    rows = invoice.rows
    by_day = "date" in rows and bool(rows["date"].notna().any())
    by_token = "token_name" in rows and bool(rows["token_name"].notna().any())
    return by_day, by_token


def _names(values: pd.Series) -> npt.NDArray[np.object_]:
    """Model or token names as keys: trimmed, missing = ""."""
    ser = pd.Series(values, dtype="string").fillna("").str.strip()
    return np.asarray(ser.to_numpy(dtype=object), dtype=object)


def _period_days(period: Period) -> tuple[int, int]:
    """The period's days in its time zone: [first, end) as days since 1970-01-01."""
    first = period.start.date()
    end = period.end.date()
    if period.end.timetz().replace(tzinfo=None) != period.end.min.time():
        end += timedelta(days=1)
    return (first - _EPOCH).days, (end - _EPOCH).days


def _day_text(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).isoformat()


def _key_text(rec: pd.Series, by_day: bool, by_token: bool) -> str:
    text = str(rec["model"]) or "(no model)"
    if by_day:
        text += f" on {_day_text(int(rec['day']))}"
    if by_token:
        text += f" for token {str(rec['token'])!r}"
    return text


def _lines_text(lines: object) -> str:
    nums = sorted(int(x) for x in lines)  # type: ignore[attr-defined]
    if len(nums) == 1:
        return f"invoice line {nums[0]}"
    return "invoice lines " + ", ".join(str(x) for x in nums)


def _invoice_finding(
    category: str,
    rec: pd.Series,
    by_day: bool,
    by_token: bool,
    *,
    line: int | None,
    log_quota: int | None,
    invoice_quota: int | None,
    diff: int,
    explanation: str,
) -> dict[str, object]:
    return {
        "category": category,
        "severity": SEVERITY[category],
        "source": "invoice",
        "log_id": pd.NA,
        "ledger_line": line if line is not None else pd.NA,
        "request_id": pd.NA,
        "created_at": _day_text(int(rec["day"])) if by_day else pd.NA,
        "type": TYPE_NAMES[CONSUME],
        "token_name": str(rec["token"]) if by_token else pd.NA,
        "model_name": str(rec["model"]),
        "group": pd.NA,
        "log_quota": log_quota if log_quota is not None else pd.NA,
        "ledger_quota": invoice_quota if invoice_quota is not None else pd.NA,
        "diff_quota": diff,
        "explanation": explanation,
    }
