"""Matching an invoice (net consume per key) against the logs, and the invoice fixtures."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from match_helpers import INVOICES, fixture_logs, fixture_rules, make_logs, period, write

from reconcile.books.invoice import load_invoice
from reconcile.core.schema import FINDING_DTYPES
from reconcile.match.invoice import match_invoice
from reconcile.pricing.rules import Rules

RULES = Rules(currency={"CNY": Decimal("7.2")})
LOGS = [
    {
        "id": 1,
        "created_at": "2026-10-05 10:00:00",
        "type": 2,
        "quota": 10_000,
        "model_name": "gpt-4o",
        "token_name": "ci",
    },
    {
        "id": 2,
        "created_at": "2026-10-05 23:59:59",
        "type": 2,
        "quota": 5_000,
        "model_name": "gpt-4o",
        "token_name": "web",
    },
    {
        "id": 3,
        "created_at": "2026-10-06 00:00:00",
        "type": 2,
        "quota": 2_000,
        "model_name": "gpt-4o",
        "token_name": "ci",
    },
    {
        "id": 4,
        "created_at": "2026-10-06 08:00:00",
        "type": 6,
        "quota": 1_000,
        "model_name": "gpt-4o",
        "token_name": "ci",
    },
    {"id": 5, "created_at": "2026-10-06 09:00:00", "type": 1, "quota": 9_999_999},
    {
        "id": 6,
        "created_at": "2026-10-06 09:00:00",
        "type": 5,
        "quota": 0,
        "model_name": "gpt-4o",
        "token_name": "ci",
    },
    {
        "id": 7,
        "created_at": "2026-10-07 09:00:00",
        "type": 2,
        "quota": 40_000,
        "model_name": " claude-3 ",
        "token_name": "ci",
    },
]


def run(tmp_path: Path, text: str, logs: list[dict[str, object]] = LOGS) -> pd.DataFrame:
    invoice = load_invoice(write(tmp_path, "invoice.csv", text), RULES, period().tz)
    assert len(invoice.unreadable) == 0
    found = match_invoice(make_logs(logs), invoice, period(), RULES)
    assert dict(found.dtypes.astype(str)) == FINDING_DTYPES
    return found


def brief(found: pd.DataFrame) -> list[tuple[object, ...]]:
    return sorted(
        (
            r.category,
            r.model_name,
            None if pd.isna(r.created_at) else r.created_at,
            None if pd.isna(r.token_name) else r.token_name,
            None if pd.isna(r.ledger_line) else int(r.ledger_line),
            None if pd.isna(r.log_quota) else int(r.log_quota),
            None if pd.isna(r.ledger_quota) else int(r.ledger_quota),
            int(r.diff_quota),
        )
        for r in found.itertuples()
    )


def test_by_model_bills_net_consume(tmp_path: Path) -> None:
    # gpt-4o: 10,000 + 5,000 + 2,000 - 1,000 = 16,000; topups and error logs are not billed.
    text = "model_name,quota\ngpt-4o,16000\nclaude-3,40000\n"
    assert len(run(tmp_path, text)) == 0


def test_by_model_mismatch_missing_either_side(tmp_path: Path) -> None:
    found = run(tmp_path, "model_name,quota\ngpt-4o,17000\nmistral,300\n")
    assert brief(found) == [
        ("amount_mismatch", "gpt-4o", None, None, 2, 16000, 17000, 1000),
        ("missing_in_ledger", "claude-3", None, None, None, 40000, None, 40000),
        ("missing_in_logs", "mistral", None, None, 3, None, 300, 300),
    ]
    words = dict(zip(found["category"], found["explanation"], strict=True))
    assert words["amount_mismatch"] == (
        "invoice line 2 bills gpt-4o 17,000 quota; the gateway logs net 16,000 "
        "(3 consume, 1 refund logs) (-1,000; tolerance 1)"
    )
    assert words["missing_in_ledger"] == (
        "the gateway logs net 40,000 quota for claude-3 (1 consume, 0 refund logs), but no "
        "invoice line bills it"
    )
    assert found["source"].unique().tolist() == ["invoice"]
    assert found["type"].unique().tolist() == ["consume"]


def test_by_model_and_day_uses_days_in_the_time_zone(tmp_path: Path) -> None:
    # 23:59:59 belongs to the 5th in Shanghai (15:59:59 UTC); 00:00:00 to the 6th.
    text = (
        "date,model_name,quota\n"
        "2026-10-05,gpt-4o,15000\n"
        "2026-10-06,gpt-4o,1000\n"
        "2026-10-07,claude-3,40000\n"
    )
    assert len(run(tmp_path, text)) == 0
    found = run(tmp_path, text.replace("2026-10-06,gpt-4o,1000", "2026-10-06,gpt-4o,3000"))
    assert brief(found) == [
        ("amount_mismatch", "gpt-4o", "2026-10-06", None, 3, 1000, 3000, 2000),
    ]
    assert "bills gpt-4o on 2026-10-06 3,000 quota" in found["explanation"].iloc[0]


def test_by_model_and_token(tmp_path: Path) -> None:
    text = "model_name,token_name,quota\ngpt-4o,ci,11000\ngpt-4o,web,5000\nclaude-3,ci,40000\n"
    assert len(run(tmp_path, text)) == 0
    found = run(tmp_path, "model_name,token_name,quota\ngpt-4o,ci,11000\nclaude-3,ci,40000\n")
    assert brief(found) == [("missing_in_ledger", "gpt-4o", None, "web", None, 5000, None, 5000)]
    assert "for gpt-4o for token 'web'" in found["explanation"].iloc[0]


def test_by_model_day_and_token(tmp_path: Path) -> None:
    text = (
        "date,model_name,token_name,quota\n"
        "2026-10-05,gpt-4o,ci,10000\n"
        "2026-10-05,gpt-4o,web,5000\n"
        "2026-10-06,gpt-4o,ci,1000\n"
        "2026-10-07,claude-3,ci,40000\n"
    )
    assert len(run(tmp_path, text)) == 0


def test_lines_with_the_same_key_are_summed(tmp_path: Path) -> None:
    text = "model_name,quota\ngpt-4o,6000\nclaude-3,40000\ngpt-4o,10000\n"
    assert len(run(tmp_path, text)) == 0
    found = run(tmp_path, "model_name,quota\ngpt-4o,6000\nclaude-3,40000\ngpt-4o,9000\n")
    (row,) = found.itertuples()
    assert (row.ledger_line, row.ledger_quota, row.diff_quota) == (2, 15000, 1000)
    assert row.explanation.startswith("invoice lines 2, 4 bill gpt-4o 15,000 quota")


def test_out_of_period_lines(tmp_path: Path) -> None:
    text = (
        "date,model_name,quota\n"
        "2026-09-30,gpt-4o,700\n"
        "2026-10-05,gpt-4o,15000\n"
        "2026-10-06,gpt-4o,1000\n"
        "2026-10-07,claude-3,40000\n"
        "2026-11-01,claude-3,800\n"
    )
    found = run(tmp_path, text)
    assert brief(found) == [
        ("out_of_period", "claude-3", "2026-11-01", None, 6, None, 800, 800),
        ("out_of_period", "gpt-4o", "2026-09-30", None, 2, None, 700, 700),
    ]
    assert found["severity"].unique().tolist() == ["warning"]
    assert "on 2026-11-01, after the period" in " ".join(found["explanation"])


def test_nothing_at_stake_is_not_a_finding(tmp_path: Path) -> None:
    logs = [
        {"id": 1, "type": 2, "quota": 500, "model_name": "a"},
        {"id": 2, "type": 6, "quota": 500, "model_name": "a"},
    ]
    assert len(run(tmp_path, "model_name,quota\nb,0\n", logs)) == 0


def test_currency_invoice_within_rounding(tmp_path: Path) -> None:
    # gpt-4o nets 16,000 quota = 0.2304 CNY, billed ¥0.23 (15,972 quota): within half a fen.
    found = run(tmp_path, "model_name,amount,currency\ngpt-4o,¥0.23,CNY\nclaude-3,¥0.58,CNY\n")
    assert len(found) == 0


# --------------------------------------------------------------------------- fixtures


def fixture_outcome(name: str) -> list[tuple[object, ...]]:
    path = INVOICES / name
    profile = path.with_suffix(".profile.toml")
    invoice = load_invoice(
        path, fixture_rules(), period().tz, profile if profile.exists() else None
    )
    assert len(invoice.unreadable) == 0
    return brief(match_invoice(fixture_logs(), invoice, period(), fixture_rules()))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "by-model.csv",
            [
                ("missing_in_ledger", "dall-e-3", None, None, None, 20000, None, 20000),
                ("missing_in_logs", "gpt-4o-mini", None, None, 4, None, 250000, 250000),
            ],
        ),
        (
            "by-model-day.csv",
            [
                ("amount_mismatch", "gpt-4o", "2026-10-20", None, 5, 720000, 833333, 113333),
                ("out_of_period", "gpt-4o", "2026-09-30", None, 2, None, 69444, 69444),
            ],
        ),
        (
            "by-model-token.csv",
            [("amount_mismatch", "claude-3-5-sonnet", None, "analytics", 4, 36000, 35000, 1000)],
        ),
    ],
)
def test_invoice_fixtures(name: str, expected: list[tuple[object, ...]]) -> None:
    assert fixture_outcome(name) == expected


def test_every_invoice_fixture_is_documented() -> None:
    documented = (INVOICES.parent / "ledgers" / "README.md").read_text(encoding="utf-8")
    for path in sorted(INVOICES.glob("*.csv")):
        assert f"`{path.name}`" in documented, path.name
