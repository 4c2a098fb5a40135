"""Matching gateway logs against an invoice: net consumption summed per key.

Decisions where the contract is silent:
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

from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconcile.core.period import Period
from reconcile.core.results import Ledger
from reconcile.core.schema import (
    AMOUNT_MISMATCH,
    CONSUME,
    MISSING_IN_LEDGER,
    MISSING_IN_LOGS,
    OUT_OF_PERIOD,
    REFUND,
    SEVERITY,
    TYPE_NAMES,
    findings_frame,
)
from reconcile.core.timefmt import local_days
from reconcile.core.tolerance import abs_diff, allowance
from reconcile.match.common import period_text, signed
from reconcile.pricing.rules import Rules

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
        lg["day"] = local_days(logs["created_at"].to_numpy(dtype=np.int64)[spend], period.tz)
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
    invoiced = merged["quota"].fillna(0).to_numpy(dtype=np.int64)
    logged = merged["net"].fillna(0).to_numpy(dtype=np.int64)
    rounding = merged["rounding"].fillna(0).to_numpy(dtype=np.int64)
    allowed = allowance(invoiced, logged, rules.tolerance, slack=rounding)
    both = has_line & has_logs
    mismatch = both & (abs_diff(invoiced, logged) > allowed)
    only_line = has_line & ~has_logs & (invoiced != 0)
    only_logs = has_logs & ~has_line & (logged != 0)

    out: list[dict[str, object]] = []
    for i in np.flatnonzero(mismatch | only_line | only_logs):
        rec = merged.iloc[int(i)]
        key_text = _key_text(rec, by_day, by_token)
        consumes = int(rec["consumes"]) if has_logs[i] else 0
        refunds = int(rec["refunds"]) if has_logs[i] else 0
        lines_text = _lines_text(rec["all_lines"]) if has_line[i] else ""
        if mismatch[i]:
            category, diff = AMOUNT_MISMATCH, abs(int(invoiced[i] - logged[i]))
            text = (
                f"{lines_text} bill{'s' if len(rec['all_lines']) == 1 else ''} {key_text} "
                f"{invoiced[i]:,} quota; the gateway logs net {logged[i]:,} ({consumes:,} consume, "
                f"{refunds:,} refund logs) ({signed(int(logged[i] - invoiced[i]))}; "
                f"tolerance {allowed[i]:,})"
            )
        elif only_line[i]:
            category, diff = MISSING_IN_LOGS, abs(int(invoiced[i]))
            text = (
                f"{lines_text} bill{'s' if len(rec['all_lines']) == 1 else ''} {key_text} "
                f"{invoiced[i]:,} quota, but the gateway has no consume or refund logs for it "
                "in the period"
            )
        else:
            category, diff = MISSING_IN_LEDGER, abs(int(logged[i]))
            text = (
                f"the gateway logs net {logged[i]:,} quota for {key_text} ({consumes:,} consume, "
                f"{refunds:,} refund logs), but no invoice line bills it"
            )
        out.append(
            _invoice_finding(
                category,
                rec,
                by_day,
                by_token,
                line=int(rec["line"]) if has_line[i] else None,
                log_quota=int(logged[i]) if has_logs[i] else None,
                invoice_quota=int(invoiced[i]) if has_line[i] else None,
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
                    f"on {day}, {side} the period {period_text(period)}: "
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
