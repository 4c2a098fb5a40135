"""The workbook's summary tables (by model, day and token), computed with pandas.

Each function returns a small DataFrame of integer quotas; the sheet writer adds currency
amounts. "Charged" is what the gateway logged; "expected" is what the rules give, over the
consume logs that could be re-priced; "ledger" is the book's consume rows (an invoice is all
consume), grouped by the book's own model, date and token columns.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from reconcile.core.period import Period
from reconcile.core.results import Ledger, RunResult
from reconcile.core.schema import CONSUME, REFUND, TOPUP, TYPE_NAMES
from reconcile.report.totals import MISMATCH, NOT_REPRICEABLE, UNPRICED, priced_with_charge

NO_NAME = "(none)"


def _consume_detail(result: RunResult) -> pd.DataFrame:
    """Consume logs with tokens, pricing status and integer helper columns for sums."""
    j = priced_with_charge(result)
    logs = result.fetch.logs
    tokens = logs.loc[logs["type"] == CONSUME, ["id", "prompt_tokens", "completion_tokens"]]
    j = j.merge(tokens, on="id", how="left")
    expected = j["expected_quota"].astype("Int64") if "expected_quota" in j else None
    status = j["status"].astype("string") if "status" in j else pd.Series(pd.NA, index=j.index)
    repriced = expected.notna() if expected is not None else pd.Series(False, index=j.index)
    quota = j["quota"].astype("int64")
    j["repriced"] = repriced.astype("int64")
    j["charged_repriced"] = quota.where(repriced, 0)
    j["expected"] = expected.fillna(0).astype("int64") if expected is not None else 0
    rule = j["rule"].astype("string") if "rule" in j else pd.Series(pd.NA, index=j.index)
    j["rule"] = rule.where(rule.str.len() > 0)
    j["mismatch"] = (status == MISMATCH).fillna(False).astype("int64")
    j["unchecked"] = status.isin([UNPRICED, NOT_REPRICEABLE]).fillna(False).astype("int64")
    j["model_name"] = j["model_name"].astype("string").fillna(NO_NAME)
    j["token_name"] = j["token_name"].astype("string").fillna(NO_NAME)
    return j


def joined_unique(df: pd.DataFrame, key: str, value: str, sep: str) -> pd.Series:
    """Per `key`, its distinct `value`s sorted and joined (deduplicated before any Python)."""
    pairs = df[[key, value]].drop_duplicates()
    return pairs.groupby(key, sort=False)[value].agg(lambda s: sep.join(sorted(map(str, s))))


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
    j = _consume_detail(result)
    g = j.groupby("model_name", sort=False)
    rules = joined_unique(j.dropna(subset=["rule"]), "model_name", "rule", "; ")
    out = pd.DataFrame(
        {
            "logs": g.size(),
            "prompt_tokens": g["prompt_tokens"].sum(),
            "completion_tokens": g["completion_tokens"].sum(),
            "charged": g["quota"].sum(),
            "repriced": g["repriced"].sum(),
            "charged_repriced": g["charged_repriced"].sum(),
            "expected": g["expected"].sum(),
            "mismatch": g["mismatch"].sum(),
            "unchecked": g["unchecked"].sum(),
        }
    )
    out["rule"] = rules.reindex(out.index).fillna("")
    out = out.reset_index()
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
        df[col] = df[col].fillna(0).astype("int64")
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
    period = result.period
    logs = result.fetch.logs
    day_of_log = local_days(logs["created_at"], period)
    j = _consume_detail(result)
    j["day"] = local_days(j["created_at"], period)
    g = j.groupby("day", sort=False)
    out = pd.DataFrame(
        {
            "logs": g.size(),
            "charged": g["quota"].sum(),
            "charged_repriced": g["charged_repriced"].sum(),
            "expected": g["expected"].sum(),
        }
    )
    for code, name in ((REFUND, "refund"), (TOPUP, "topup")):
        mask = logs["type"] == code
        out[name] = logs.loc[mask, "quota"].groupby(day_of_log[mask]).sum()
    days, undated = book_days(result)
    if days is not None:
        rows = book_consume(_book(result))
        out["ledger"] = rows["quota"].groupby(days.to_numpy()).sum() if len(rows) else 0
    out = out.reindex(pd.Index(period_days(period), name="day"))
    out = _fill_ints(out.reset_index())
    out["diff"] = out["charged_repriced"] - out["expected"]
    if days is not None:
        out["book_diff"] = out["charged"] - out["ledger"]  # gateway − books, as everywhere
    return out, days is not None, undated


def by_token(result: RunResult) -> pd.DataFrame:
    logs = result.fetch.logs
    token = logs["token_name"].astype("string").fillna(NO_NAME)
    pairs = pd.DataFrame({"token_name": token, "key_ref": logs["key_ref"].astype("string")})
    keys = joined_unique(pairs.dropna(), "token_name", "key_ref", ", ")
    out = pd.DataFrame({"keys": keys})
    for code, name in ((CONSUME, "charged"), (REFUND, "refund"), (TOPUP, "topup")):
        mask = logs["type"] == code
        out[name] = logs.loc[mask, "quota"].groupby(token[mask]).sum()
    out["logs"] = (logs["type"] == CONSUME).groupby(token).sum()
    j = _consume_detail(result)
    g = j.groupby("token_name", sort=False)
    out["charged_repriced"] = g["charged_repriced"].sum()
    out["expected"] = g["expected"].sum()
    out.index.name = "token_name"
    out = out.reset_index()
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
    logs = result.fetch.logs
    rows = logs[logs["type"].isin([REFUND, TOPUP])].sort_values(
        ["created_at", "id"], kind="mergesort"
    )
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
    j = _consume_detail(result).dropna(subset=["rule"])
    g = j.groupby(j["rule"].astype("string"), sort=True)
    out = pd.DataFrame(
        {
            "logs": g.size(),
            "charged": g["charged_repriced"].sum(),
            "expected": g["expected"].sum(),
            "mismatch": g["mismatch"].sum(),
        }
    )
    return out.reset_index()


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
