"""Joining every stage's findings into one table a reviewer can act on.

`finalize` adds, beside the stages' columns (which stay as they are, `diff_quota` the
absolute amount at stake):

- signed differences, one convention everywhere: **gateway minus contract** on a pricing
  finding (positive: charged above the contract) and **gateway minus books** on a ledger or
  invoice finding (positive: the gateway holds spend the books lack). Refunds count negative,
  because they reduce spend, so the books differences of consume and refund rows net to
  "gateway net spend minus books net spend"; top-ups are credit bought, positive, and every
  total keeps them apart. Each finding carries only its own comparison, so summing a column
  over the findings never counts one log twice;
- the matched ledger line and amount on a pricing finding, so a reviewer sees whether the
  books already hold an overcharge;
- money for each quota column (exact decimals in the report currency, held compactly as
  money.MONEY_DTYPE and read back as Decimal) and an action.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import pandas as pd

from reconcile.core.money import amounts_of, display_amount, exact_sum
from reconcile.core.period import Period
from reconcile.core.results import Ledger
from reconcile.core.schema import (
    ACTION,
    AMOUNT_MISMATCH,
    CATEGORIES,
    DUPLICATE_LEDGER,
    FINDING_COLUMNS,
    MISSING_IN_LEDGER,
    MISSING_IN_LOGS,
    NOT_REPRICEABLE,
    OPEN_PERIOD,
    OUT_OF_PERIOD,
    PRICING_MISMATCH,
    SEVERITY,
    SEVERITY_RANK,
    SPEND_SIGN,
    TRAILING_DTYPES,
    UNPRICED_MODEL,
    UNREADABLE_ROW,
    empty_findings,
    findings_frame,
)
from reconcile.pricing.rules import Rules

_BOOK_SOURCES = ("ledger", "invoice")


def _values(series: pd.Series) -> list[Any]:
    """A column as Python values (ints, strs, Decimals), None where missing."""
    values: list[Any] = cast(Any, series).to_numpy(dtype=object, na_value=None).tolist()
    return values


def open_period(period: Period, fetched_at: datetime) -> pd.DataFrame:
    """One `open_period` finding when the logs were read before the period ended, else none.

    A month read on the 20th holds twenty days of logs: a pass over it would sign off spend
    that has not happened yet, so an open period is a finding that fails the run.
    """
    if fetched_at >= period.end:
        return empty_findings()
    cut = fetched_at.astimezone(period.tz).isoformat(timespec="seconds")
    return findings_frame(
        {
            "category": [OPEN_PERIOD],
            "severity": [SEVERITY[OPEN_PERIOD]],
            "source": ["fetch"],
            "created_at": [cut],
            "explanation": [
                f"the period ends {period.end.isoformat()} but the logs were read at {cut}: "
                "logs after that time are not in this report, so it cannot pass as complete"
            ],
        }
    )


def _attach_ledger_lines(df: pd.DataFrame, book: Ledger | None) -> None:
    """Fill ledger_line / ledger_quota of pricing findings from the row that books the log."""
    if book is None or book.kind != "ledger" or not len(df) or not len(book.rows):
        return
    key = "request_id" if book.match_key == "request_id" else "log_id"
    if key not in book.rows:
        return
    want = (df["source"] == "pricing").fillna(False) & df["ledger_line"].isna() & df[key].notna()
    if not want.any():
        return
    # only the rows these findings name, and three columns: a copy of the whole ledger here
    # (twice: its booked rows, then sorted) was 0.7 GB at 10M rows, the run's peak
    keys = book.rows[key]
    named = keys.notna() & keys.isin(df.loc[want, key].unique())
    rows = book.rows.loc[named, [key, "line", "quota"]].sort_values("line", kind="mergesort")
    rows = rows.drop_duplicates(key, keep="first")  # the first row is the matched one
    lookup = rows.set_index(key)
    hit = df.loc[want, key].map(lookup["line"]).astype("Int64")
    quota = df.loc[want, key].map(lookup["quota"]).astype("Int64")
    df.loc[want, "ledger_line"] = hit
    df.loc[want, "ledger_quota"] = quota


def _signed(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(gateway − contract, gateway − books) per finding, Int64 with NA where not compared."""
    cat = df["category"].astype("string")
    source = df["source"].astype("string")
    log_q = df["log_quota"].astype("Int64")
    book_q = df["ledger_quota"].astype("Int64")
    expected = df["expected_quota"].astype("Int64")
    contract = (log_q - expected).where((cat == PRICING_MISMATCH).fillna(False))
    sign = df["type"].astype("string").map(SPEND_SIGN).fillna(1).astype("int64")
    is_book = source.isin(_BOOK_SOURCES).fillna(False)
    extra_row = cat.isin([DUPLICATE_LEDGER, OUT_OF_PERIOD]).fillna(False)
    either = log_q.notna() | book_q.notna()
    gap = log_q.fillna(0) - book_q.fillna(0)
    gap = gap.where(~extra_row, -book_q)
    books = (gap * sign).where(is_book & either)
    return contract.astype("Int64"), books.astype("Int64")


def _actions(df: pd.DataFrame, currency: str) -> list[str]:
    """One sentence per finding: what the reviewer does about it."""

    def amt(value: object) -> str:
        return display_amount(abs(value), currency) if isinstance(value, Decimal) else "?"

    def col(name: str) -> list[Any]:
        return _values(df[name]) if name in df else [None] * len(df)

    out = []
    for cat, log, line, typ, model, cd, cda, lam, bam, src in zip(
        col("category"),
        col("log_id"),
        col("ledger_line"),
        col("type"),
        col("model_name"),
        col("contract_diff_quota"),
        col("contract_diff_amount"),
        col("log_amount"),
        col("ledger_amount"),
        col("source"),
        strict=True,
    ):
        if cat == PRICING_MISMATCH and isinstance(cd, int):
            text = (
                f"claim a credit of {amt(cda)} for log {log}: charged above the contract"
                if cd > 0
                else f"log {log} was charged {amt(cda)} below the contract: expect a "
                "back-charge, or correct the rule"
            )
            if line is not None:
                same = lam == bam
                text += f"; ledger line {line} books {amt(bam)}" + (
                    " (the gateway's charge)" if same else ""
                )
        elif cat == UNPRICED_MODEL:
            text = f"add a pricing rule for model {model}, then rerun from the snapshot"
        elif cat == MISSING_IN_LEDGER:
            text = f"book log {log} ({typ}, {amt(lam)}) in the ledger"
        elif cat == MISSING_IN_LOGS:
            text = f"remove ledger line {line} ({amt(bam)}) or find its gateway log"
        elif cat == AMOUNT_MISMATCH and src == "invoice":
            text = f"invoice line {line} bills {amt(bam)}, the logs {amt(lam)}: dispute or correct"
        elif cat == AMOUNT_MISMATCH:
            text = (
                f"correct ledger line {line} from {amt(bam)} to {amt(lam)}, or dispute the charge"
            )
        elif cat == DUPLICATE_LEDGER:
            text = f"remove ledger line {line}: log {log} is already booked"
        elif cat == OUT_OF_PERIOD:
            text = f"move ledger line {line} ({amt(bam)}) to the period of its date"
        elif cat == NOT_REPRICEABLE:
            text = f"check log {log}'s charge of {amt(lam)} by hand"
        elif cat == UNREADABLE_ROW:
            text = f"fix line {line} of the {src} file, then rerun"
        else:
            text = ACTION.get(str(cat), "review the finding")
        out.append(text)
    return out


def _action_column(df: pd.DataFrame, currency: str, chunk: int = 10_000) -> pd.Series:
    """`_actions` a chunk of rows at a time: the Python objects a sentence is made from (a
    Decimal per amount, the text) live for one chunk, not for the whole table at once."""
    parts = [
        pd.Series(_actions(df.iloc[start : start + chunk], currency), dtype="string")
        for start in range(0, len(df), chunk)
    ]
    out = pd.concat(parts, ignore_index=True) if parts else pd.Series([], dtype="string")
    return out.set_axis(df.index)


def finalize(frames: list[pd.DataFrame], rules: Rules, book: Ledger | None = None) -> pd.DataFrame:
    """Concatenate findings, add the signed, money and action columns, and sort.

    The trailing columns (schema.TRAILING_DTYPES) follow, NA where a stage does not set them.

    Order: money at stake (largest first), then severity, category, log id and ledger line,
    so the same inputs always give the same rows in the same order.
    """
    parts = [findings_frame(f) for f in frames if len(f)]
    joined = pd.concat(parts, ignore_index=True) if parts else empty_findings()
    del parts
    df = joined[FINDING_COLUMNS].copy()
    _attach_ledger_lines(df, book)
    # sorted before the money, action and trailing columns exist, so that no copy of the
    # table is made with them (100,000 findings: about 40 MB less at the run's peak)
    key = pd.DataFrame(
        {
            "stake": df["diff_quota"].fillna(0).astype("int64"),
            "sev": df["severity"].map(SEVERITY_RANK).fillna(0).astype("int64"),
            "cat": df["category"].map({c: i for i, c in enumerate(CATEGORIES)}).fillna(99),
            "log": df["log_id"].fillna(-1),
            "line": df["ledger_line"].fillna(-1),
        }
    )
    order = key.sort_values(
        ["stake", "sev", "cat", "log", "line"],
        ascending=[False, False, True, True, True],
        kind="mergesort",
    ).index.to_numpy()
    del key
    df = df.take(order).reset_index(drop=True)
    trailing = {
        col: joined[col].take(order).reset_index(drop=True)
        for col in TRAILING_DTYPES
        if col in joined
    }
    del joined
    currency = rules.report_currency.upper()
    rate = rules.rate(currency)

    def money(quota: pd.Series) -> pd.Series:
        return amounts_of(quota, rules.quota_per_unit, rate)

    df["diff_amount"] = money(df["diff_quota"].fillna(0))  # nothing at stake: zero
    df["currency"] = pd.Series(currency, index=df.index, dtype="string")
    contract, books = _signed(df)
    df["contract_diff_quota"] = contract
    df["books_diff_quota"] = books
    df["contract_diff_amount"] = money(contract)
    df["books_diff_amount"] = money(books)
    df["log_amount"] = money(df["log_quota"])
    df["ledger_amount"] = money(df["ledger_quota"])
    df["action"] = _action_column(df, currency)
    for col, dtype in TRAILING_DTYPES.items():  # after the money columns, NA where not set
        values = trailing.pop(col, None)
        if values is None:
            values = pd.Series(pd.NA, index=df.index)
        df[col] = values.astype(pd.api.types.pandas_dtype(dtype))
    return df


def by_category(findings: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Count and quota at stake per category; every category present, with zeros."""
    out = {c: {"count": 0, "quota": 0} for c in CATEGORIES}
    if len(findings):
        for cat, quotas in findings.groupby("category", observed=True)["diff_quota"]:
            out[str(cat)] = {"count": len(quotas), "quota": exact_sum(quotas)}
    return out


def signed_sums(findings: pd.DataFrame, column: str) -> dict[str, tuple[int, int]]:
    """Per category, (sum of positive, sum of negative) values of a signed quota column,
    as exact Python ints (a numpy sum of int64 would wrap at 2^63)."""
    out: dict[str, tuple[int, int]] = {}
    if not len(findings) or column not in findings:
        return out
    for cat, values in zip(
        _values(findings["category"].astype("string")),
        _values(findings[column]),
        strict=True,
    ):
        if values is None:
            continue
        pos, neg = out.get(str(cat), (0, 0))
        v = int(values)
        out[str(cat)] = (pos + v, neg) if v > 0 else (pos, neg + v)
    return out


def reaches(findings: pd.DataFrame, fail_on: str) -> bool:
    """True when any finding's severity is at or above `fail_on` (never: always False)."""
    if fail_on == "never" or not len(findings):
        return False
    floor = SEVERITY_RANK[fail_on]
    return bool((findings["severity"].map(SEVERITY_RANK) >= floor).any())
