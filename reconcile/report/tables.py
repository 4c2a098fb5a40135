"""The workbook's summary tables (by model, day and token), from the run's aggregates.

The logs are never read here: their side of each table is RunResult.aggregates (summed day
by day, see core/aggregates.py), so the tables cost the same whatever the month's size.
Each function returns a small DataFrame of integer quotas (Python ints where a sum passes 64
bits); the sheet writer adds currency amounts. "Charged" is what the gateway logged;
"expected" is what the rules give, over the consume logs that could be re-priced; "ledger" is
the book's consume rows (an invoice is all consume), grouped by the book's own model, date
and token columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pandas as pd

from reconcile.core.aggregates import (
    DAY_VALUES,
    MODEL_VALUES,
    NO_NAME,
    RULE_VALUES,
    TOKEN_VALUES,
    Sums,
)
from reconcile.core.period import Period
from reconcile.core.results import Ledger, RunResult
from reconcile.core.schema import CONSUME, TYPE_NAMES


def _table(sums: Sums[str], key: str, values: Sequence[str]) -> pd.DataFrame:
    """One aggregates table as a frame: its key column (strings), then int64 value columns."""
    rows = list(sums.values())
    out = pd.DataFrame({key: pd.Series(list(sums), dtype="string")})
    for i, name in enumerate(values):
        out[name] = _exact([r[i] for r in rows])
    return out


def _exact(values: list[int]) -> pd.Series:
    """int64, or Python ints (object) when a sum is beyond 64 bits: never wrapped."""
    try:
        return pd.Series(values, dtype="int64")
    except OverflowError:
        return pd.Series(values, dtype=object)


def _joined(pairs: Sequence[tuple[str, str]], sep: str) -> dict[str, str]:
    """Per first item, its distinct second items sorted and joined."""
    found: dict[str, set[str]] = {}
    for key, value in pairs:
        found.setdefault(key, set()).add(value)
    return {key: sep.join(sorted(values)) for key, values in found.items()}


def book_consume(book: Ledger | None) -> pd.DataFrame:
    """The book's rows that record spend (ledger consume rows, or every invoice row)."""
    if book is None:
        return pd.DataFrame()
    rows = book.rows
    if book.kind != "invoice" and "type" in rows:
        rows = rows[rows["type"] == CONSUME]
    return rows


def _sum_by(rows: pd.DataFrame, key: str) -> pd.DataFrame:
    if not len(rows) or key not in rows:
        return pd.DataFrame({key: pd.Series(dtype="string"), "ledger_rows": [], "ledger": []})
    keys = rows[key].astype("string").fillna(NO_NAME)
    g = rows.groupby(keys, sort=False)["quota"]
    out = pd.DataFrame({"ledger_rows": g.size(), "ledger": g.sum()}).reset_index()
    return out.rename(columns={out.columns[0]: key})


def by_model(result: RunResult) -> pd.DataFrame:
    agg = result.aggregates
    out = _table(agg.by_model, "model_name", MODEL_VALUES)
    rules = _joined(list(agg.by_rule), "; ")
    out["rule"] = out["model_name"].map(rules).astype("string")
    book = _sum_by(book_consume(_book(result)), "model_name")
    out = out.merge(book, on="model_name", how="outer")
    out = _fill_ints(out)
    out["diff"] = out["charged_repriced"] - out["expected"]
    out["book_diff"] = out["charged"] - out["ledger"]  # gateway − books, as everywhere
    out["rule"] = out["rule"].astype("string").fillna("")
    return out.sort_values(
        ["charged", "ledger", "model_name"], ascending=[False, False, True], kind="mergesort"
    ).reset_index(drop=True)


def _book(result: RunResult) -> Ledger | None:
    return result.ledger if result.ledger is not None else result.invoice


def _fill_ints(df: pd.DataFrame) -> pd.DataFrame:
    for col in df.columns:
        if col in ("model_name", "token_name", "rule", "day", "keys"):
            continue
        filled = df[col].fillna(0)
        df[col] = filled if filled.dtype == object else filled.astype("int64")
    return df


def period_days(period: Period) -> list[str]:
    """Every local date the half-open period touches, as YYYY-MM-DD."""
    first = period.start.date()
    last = (period.end - timedelta(seconds=1)).date()
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def local_days(unix: pd.Series, period: Period) -> pd.Series:
    """Unix seconds → the local date in the period's time zone, as YYYY-MM-DD (NA stays NA)."""
    ts = pd.to_datetime(unix.astype("Int64"), unit="s", utc=True)
    local = ts.dt.tz_convert(period.tz).dt.tz_localize(None).dt.normalize()
    return local.dt.strftime("%Y-%m-%d").astype("string")


def book_days(result: RunResult) -> tuple[pd.Series | None, int]:
    """The book's spend rows' local dates, and how many rows have none.

    None instead of dates when the book gives no dates at all (no book, or an invoice
    without a date column): a per-day ledger column of zeros would be a false statement.
    """
    book = _book(result)
    if book is None:
        return None, 0
    rows = book_consume(book)
    if not len(rows):
        return pd.Series(dtype="string"), 0
    if "created_at" in rows:
        days = local_days(rows["created_at"], result.period)
    elif "date" in rows:
        days = rows["date"].astype("string").str.slice(0, 10)
    else:
        return None, len(rows)
    undated = int(days.isna().sum())
    return (None if undated == len(rows) else days), undated


def by_day(result: RunResult) -> tuple[pd.DataFrame, bool, int]:
    """Per local day of the period; also whether the book has dates, and rows without one."""
    days = pd.Index(period_days(result.period), name="day")
    out = _table(result.aggregates.by_day, "day", DAY_VALUES).set_index("day").reindex(days)
    book_dates, undated = book_days(result)
    if book_dates is not None:
        rows = book_consume(_book(result))
        ledger = rows["quota"].groupby(book_dates.to_numpy()).sum() if len(rows) else None
        out["ledger"] = ledger.reindex(days) if ledger is not None else 0
    out = _fill_ints(out.reset_index())
    out["diff"] = out["charged_repriced"] - out["expected"]
    if book_dates is not None:
        out["book_diff"] = out["charged"] - out["ledger"]  # gateway − books, as everywhere
    return out, book_dates is not None, undated


def by_token(result: RunResult) -> pd.DataFrame:
    agg = result.aggregates
    out = _table(agg.by_token, "token_name", TOKEN_VALUES)
    pairs = [(NO_NAME if t is None else t, k) for k, t in agg.key_tokens]
    out.insert(1, "keys", out["token_name"].map(_joined(pairs, ", ")).astype("string"))
    out = out.merge(
        _sum_by(book_consume(_book(result)), "token_name"), on="token_name", how="outer"
    )
    findings = result.findings
    if len(findings):
        counts = findings["token_name"].astype("string").dropna().value_counts()
        out["findings"] = out["token_name"].map(counts)
    else:
        out["findings"] = 0
    out["keys"] = out["keys"].astype("string").fillna("")
    out = _fill_ints(out)
    out["diff"] = out["charged_repriced"] - out["expected"]
    out["net"] = out["charged"] - out["refund"]
    return out.sort_values(
        ["charged", "ledger", "token_name"], ascending=[False, False, True], kind="mergesort"
    ).reset_index(drop=True)


def refunds_topups(result: RunResult) -> pd.DataFrame:
    """Refund and topup logs in time order, with the ledger quota booked against each."""
    rows = result.aggregates.refunds_topups
    rows = rows.assign(type_name=rows["type"].map(TYPE_NAMES))
    ledger = result.ledger
    booked = pd.Series(dtype="Int64")
    if ledger is not None and len(ledger.rows) and "log_id" in ledger.rows:
        lr = ledger.rows.dropna(subset=["log_id"]).drop_duplicates("log_id", keep="first")
        booked = pd.Series(lr["quota"].to_numpy(), index=lr["log_id"].astype("int64").to_numpy())
    rows = rows.assign(ledger=rows["id"].map(booked).astype("Int64"))
    return rows.reset_index(drop=True)


def rules_used(result: RunResult) -> pd.DataFrame:
    """Per rule the pricing stage applied: logs, charged and expected quota."""
    per_rule: Sums[str] = {}
    for (_, rule), values in result.aggregates.by_rule.items():
        was = per_rule.get(rule)
        per_rule[rule] = values if was is None else tuple(map(sum, zip(was, values, strict=True)))
    out = _table(dict(sorted(per_rule.items())), "rule", RULE_VALUES)
    return out.rename(columns={"charged_repriced": "charged"})


def unreadable_rows(result: RunResult) -> pd.DataFrame:
    parts = []
    for book in (result.ledger, result.invoice):
        if book is not None and len(book.unreadable):
            part = book.unreadable.copy()
            part.insert(0, "file", book.path)
            part.insert(0, "source", book.kind)
            parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["source", "file", "line", "field", "reason", "raw"])
    return pd.concat(parts, ignore_index=True)
