"""Reading invoice CSVs: keys from the columns present, amounts exact, bad lines kept."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from match_helpers import INVOICES, fixture_rules, period, write

from reconcile.books.invoice import load_invoice
from reconcile.books.problems import unreadable_findings
from reconcile.core.results import Ledger
from reconcile.errors import InputError
from reconcile.pricing.rules import Rules

RULES = Rules(currency={"CNY": Decimal("7.2")})


def load(tmp_path: Path, text: str, rules: Rules = RULES) -> Ledger:
    return load_invoice(write(tmp_path, "invoice.csv", text), rules, period().tz)


def test_keys_follow_the_columns_present(tmp_path: Path) -> None:
    assert load(tmp_path, "model_name,amount,currency\ngpt-4o,1.00,USD\n").match_key == "model_name"
    by_day = load(tmp_path, "Date,Model,Amount,Currency\n2026-10-05,gpt-4o,1,USD\n")
    assert by_day.match_key == "model_name+date"
    by_token = load(tmp_path, "model_name,token_name,quota\ngpt-4o,ci,5\n")
    assert by_token.match_key == "model_name+token_name"
    assert by_token.rows["quota"].tolist() == [5]


def test_dates_are_days_in_the_run_time_zone(tmp_path: Path) -> None:
    text = (
        "date,model_name,amount,currency\n"
        "2026-10-05,a,1,USD\n"
        "2026/10/6,a,1,USD\n"
        "2026-10-06T16:30:00Z,a,1,USD\n"  # 00:30 on the 7th in Shanghai
        "1791165600,a,1,USD\n"
    )
    rows = load(tmp_path, text).rows
    assert rows["date"].tolist() == ["2026-10-05", "2026-10-06", "2026-10-07", "2026-10-05"]


def test_bad_invoice_lines_are_unreadable_with_line_and_field(tmp_path: Path) -> None:
    text = (
        "date,model_name,amount,currency\n"
        "2026-10,gpt-4o,1.00,USD\n"
        ",gpt-4o,1.00,USD\n"
        "2026-10-05,,1.00,USD\n"
        "2026-10-05,gpt-4o,one,USD\n"
        "2026-10-05,gpt-4o,1.00,XYZ\n"
        "2026-10-05,gpt-4o,1.00,USD\n"
    )
    invoice = load(tmp_path, text)
    bad = invoice.unreadable
    assert list(zip(bad["line"], bad["field"], strict=True)) == [
        (2, "date"),
        (3, "date"),
        (4, "model_name"),
        (5, "amount"),
        (6, "currency"),
    ]
    assert bad["reason"].iloc[0] == "'2026-10' is not a day (YYYY-MM-DD)"
    assert bad["reason"].iloc[1] == "missing date (this invoice is billed by day)"
    found = unreadable_findings(invoice)
    assert found["source"].unique().tolist() == ["invoice"]
    assert found["ledger_line"].tolist() == [2, 3, 4, 5, 6]
    assert invoice.rows["line"].tolist() == [7]


def test_credit_lines_stay_negative(tmp_path: Path) -> None:
    text = "model_name,amount,currency\ngpt-4o,$1.00,USD\ngpt-4o,($0.10),USD\ngpt-4o,-¥0.72,CNY\n"
    rows = load(tmp_path, text).rows
    assert rows["quota"].tolist() == [500_000, -50_000, -50_000]
    assert rows["rounding"].tolist() == [2501, 2501, 348]


def test_invoice_profile_and_rules_mapping(tmp_path: Path) -> None:
    invoice = load_invoice(
        INVOICES / "by-model.csv",
        fixture_rules(),
        period().tz,
        INVOICES / "by-model.profile.toml",
    )
    assert invoice.rows["model_name"].tolist() == ["gpt-4o", "claude-3-5-sonnet", "gpt-4o-mini"]
    assert invoice.rows["quota"].tolist() == [735_000, 35_000, 250_000]
    assert invoice.ignored_columns == ["Description"]
    assert invoice.currency == "USD"
    assert invoice.kind == "invoice"
    assert pd.isna(invoice.rows["date"]).all()


def test_missing_model_column(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        load_invoice(INVOICES / "missing-model.csv", fixture_rules(), period().tz)
    assert err.value.file == str(INVOICES / "missing-model.csv")
    assert (err.value.line, err.value.field) == (1, "model_name")
    assert "no model_name column among the file's columns ('date', 'amount', 'currency')" in str(
        err.value
    )


def test_missing_amount_column(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        load(tmp_path, "model_name,price\ngpt-4o,1\n")
    assert (err.value.line, err.value.field) == (1, "amount")
