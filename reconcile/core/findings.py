"""Joining every stage's findings into one table, with money at stake in the report currency."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from reconcile.core.money import quota_to_amount
from reconcile.core.schema import (
    CATEGORIES,
    FINDING_COLUMNS,
    SEVERITY_RANK,
    TRAILING_DTYPES,
    empty_findings,
    findings_frame,
)
from reconcile.pricing.rules import Rules


def finalize(frames: list[pd.DataFrame], rules: Rules) -> pd.DataFrame:
    """Concatenate findings, add `diff_amount` (exact Decimal) and `currency`, and sort.

    The trailing columns (schema.TRAILING_DTYPES) follow, NA where a stage does not set them.

    Order: money at stake (largest first), then severity, category, log id and ledger line,
    so the same inputs always give the same rows in the same order.
    """
    parts = [findings_frame(f) for f in frames if len(f)]
    joined = pd.concat(parts, ignore_index=True) if parts else empty_findings()
    df = joined[FINDING_COLUMNS]
    currency = rules.report_currency.upper()
    rate = rules.rate(currency)
    df["diff_amount"] = pd.Series(
        [
            quota_to_amount(int(q), rules.quota_per_unit, rate) if pd.notna(q) else Decimal(0)
            for q in df["diff_quota"]
        ],
        index=df.index,
        dtype=object,
    )
    df["currency"] = pd.Series(currency, index=df.index, dtype="string")
    for col, dtype in TRAILING_DTYPES.items():  # after the money columns, NA where not set
        values = joined[col] if col in joined else pd.Series(pd.NA, index=joined.index)
        df[col] = values.astype(pd.api.types.pandas_dtype(dtype))
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
    ).index
    return df.loc[order].reset_index(drop=True)


def by_category(findings: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Count and quota at stake per category; every category present, with zeros."""
    out = {c: {"count": 0, "quota": 0} for c in CATEGORIES}
    if len(findings):
        grouped = findings.groupby("category", observed=True)["diff_quota"]
        for cat, count in grouped.size().items():
            out.setdefault(str(cat), {"count": 0, "quota": 0})["count"] = int(count)
        for cat, quota in grouped.sum().items():
            out[str(cat)]["quota"] = int(quota)
    return out


def reaches(findings: pd.DataFrame, fail_on: str) -> bool:
    """True when any finding's severity is at or above `fail_on` (never: always False)."""
    if fail_on == "never" or not len(findings):
        return False
    floor = SEVERITY_RANK[fail_on]
    return bool((findings["severity"].map(SEVERITY_RANK) >= floor).any())
