"""The findings' money columns: exact to the last of six places, compact, and written as such."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pandas as pd
from report_helpers import rules

from reconcile.core import findings as findings_mod
from reconcile.core.money import quota_to_amount
from reconcile.core.schema import AMOUNT_MISMATCH, MISSING_IN_LOGS, OPEN_PERIOD, findings_frame
from reconcile.report.csvfile import write_discrepancies_csv

MONEY = ["diff_amount", "contract_diff_amount", "books_diff_amount", "log_amount", "ledger_amount"]
BIG = 2**63 - 1  # the largest quota an int64 holds


def _ints(values: list[int | None]) -> pd.Series:
    return pd.Series(pd.array(values, dtype="Int64"))


def _finalize(currency: str, n: int = 0) -> pd.DataFrame:
    quotas = [BIG, -BIG, 1, 7, 123_456_789, *range(1_000, 1_000 + n)]
    frame = findings_frame(
        {
            "category": [AMOUNT_MISMATCH] * len(quotas) + [MISSING_IN_LOGS, OPEN_PERIOD],
            "severity": "error",
            "source": ["ledger"] * (len(quotas) + 1) + ["fetch"],
            "log_id": _ints([*range(1, len(quotas) + 1), None, None]),
            "ledger_line": _ints([*range(2, len(quotas) + 2), 9_999, None]),
            "type": "consume",
            "log_quota": _ints([*quotas, None, None]),
            "ledger_quota": _ints([*(q // 3 for q in quotas), 5, None]),
            "diff_quota": _ints([*(abs(q - q // 3) for q in quotas), 5, None]),
            "explanation": "x",
        }
    )
    custom = rules().model_copy(update={"report_currency": currency})
    return findings_mod.finalize([frame], custom)


def test_every_amount_is_exactly_the_quota_converted(tmp_path: Path) -> None:
    for currency, rate in (("USD", Decimal(1)), ("CNY", Decimal("7.2"))):
        found = _finalize(currency)
        path = tmp_path / f"{currency}.csv"
        write_discrepancies_csv(found, path)
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
        for row, (_, record) in zip(rows, found.iterrows(), strict=True):
            for money in MONEY:
                quota_col = "diff_quota" if money == "diff_amount" else money[:-6] + "quota"
                quota = row[quota_col]
                if not quota:  # no quota, no amount (nothing at stake reads as zero)
                    assert row[money] == ("0.000000" if money == "diff_amount" else "")
                    continue
                exact = quota_to_amount(int(quota), Decimal(500000), rate)
                assert row[money] == str(exact)  # six places, every digit kept
                assert record[money] == exact  # the table reads back the same Decimal
    # the largest quota in CNY, every digit: 2^63 - 1 quota x 7.2 / 500,000
    cny = _finalize("CNY")
    assert cny["log_amount"].max() == Decimal("132816557330708.771621")


def test_money_columns_stay_small_however_many_distinct_amounts() -> None:
    found = _finalize("CNY", n=20_000)
    for money in MONEY:
        per_row = found[money].memory_usage(deep=True, index=False) / len(found)
        # a Python Decimal object per row costs over 100 bytes; an exact 128-bit decimal 16
        assert per_row < 20, (money, per_row)
