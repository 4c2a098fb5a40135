"""Each ledger in fixtures/ledgers/ gives the outcome its README row promises."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from match_helpers import LEDGERS, fixture_logs, fixture_rules, period

from reconcile.books.ledger import load_ledger
from reconcile.books.problems import unreadable_findings
from reconcile.core.results import Ledger
from reconcile.errors import InputError
from reconcile.match.ledger import match_ledger


def read(name: str, *, profile: bool = True) -> Ledger:
    path = LEDGERS / name
    prof = path.with_suffix(".profile.toml")
    return load_ledger(
        path, fixture_rules(), period().tz, prof if profile and prof.exists() else None
    )


def outcome(name: str, *, profile: bool = True) -> tuple[Ledger, pd.DataFrame]:
    ledger = read(name, profile=profile)
    found = match_ledger(fixture_logs(), ledger, period(), fixture_rules())
    found = pd.concat([found, unreadable_findings(ledger)], ignore_index=True)
    return ledger, found


def summary(found: pd.DataFrame) -> list[tuple[str, object, object, int | None]]:
    """(category, ledger line, log id, diff) per finding, in a stable order."""
    rows = [
        (
            str(r.category),
            None if pd.isna(r.ledger_line) else int(r.ledger_line),
            None if pd.isna(r.log_id) else int(r.log_id),
            None if pd.isna(r.diff_quota) else int(r.diff_quota),
        )
        for r in found.itertuples()
    ]
    return sorted(rows, key=lambda x: (x[0], x[1] or 0, x[2] or 0))


@pytest.mark.parametrize("name", ["clean.csv", "extra-columns.csv", "gbk.csv"])
def test_files_that_reconcile(name: str) -> None:
    ledger, found = outcome(name)
    assert summary(found) == []
    assert len(ledger.rows) == 7
    assert ledger.quota == 12500 + 2000 + 36000 + 2000 + 5_000_000 + 720_000 + 20_000


def test_extra_columns_are_listed() -> None:
    ledger = read("extra-columns.csv")
    assert ledger.ignored_columns == ["Voucher No", "Cost Center", "Remarks"]


def test_gbk_reads_without_its_profile_declaring_it(tmp_path: Path) -> None:
    declared = read("gbk.csv")
    profile = (LEDGERS / "gbk.profile.toml").read_text(encoding="utf-8")
    undeclared = tmp_path / "gbk.profile.toml"
    undeclared.write_text(profile.replace('encoding = "gbk"', ""), encoding="utf-8")
    detected = load_ledger(LEDGERS / "gbk.csv", fixture_rules(), period().tz, undeclared)
    assert declared.encoding == "gbk"
    assert detected.encoding == "gb18030"
    assert "ledger: read as gb18030" in detected.warnings
    assert detected.rows["type"].tolist() == [2, 2, 2, 6, 1, 2, 2]
    assert detected.rows.equals(declared.rows)


def test_excel_german_export() -> None:
    ledger, found = outcome("excel-bom-semicolon.csv")
    assert summary(found) == [("amount_mismatch", 8, 1007, 500)]
    assert found["explanation"].iloc[0] == (
        "ledger line 8 has 719,500 quota, gateway charged 720,000 for log 1007 (+500; tolerance 1)"
    )
    assert ledger.blank_rows == 2
    assert ledger.ignored_columns == ["Buchungs-ID", "Bemerkung"]
    assert ledger.rows["quota"].iloc[4] == 5_000_000


def test_cny_amounts_rounded_to_fen() -> None:
    ledger, found = outcome("cny-amounts.csv")
    assert summary(found) == [("amount_mismatch", 4, 1003, 7056)]
    assert ledger.currency == "CNY"
    assert set(ledger.rows["rounding"]) == {348}


def test_missing_column() -> None:
    with pytest.raises(InputError) as err:
        read("missing-column.csv")
    assert err.value.file == str(LEDGERS / "missing-column.csv")
    assert (err.value.line, err.value.field) == (1, "type")


def test_bad_rows() -> None:
    ledger, found = outcome("bad-rows.csv")
    assert summary(found) == [
        ("unreadable_row", 3, 1002, None),
        ("unreadable_row", 6, 1004, None),
        ("unreadable_row", 7, 1005, None),
        ("unreadable_row", 9, 1008, None),
        ("unreadable_row", 10, 1009, None),
    ]
    assert ledger.unreadable["field"].tolist() == [
        "quota",
        "created_at",
        "type",
        "quota",
        "(row)",
    ]
    assert ledger.rows["line"].tolist() == [2, 4, 8]  # 1003's note spans lines 4-5


def test_duplicates() -> None:
    _, found = outcome("duplicates.csv")
    assert summary(found) == [
        ("duplicate_ledger", 5, 1002, 2100),
        ("duplicate_ledger", 8, 1003, 36000),
        ("duplicate_ledger", 9, 1003, 36000),
    ]


def test_out_of_period() -> None:
    _, found = outcome("out-of-period.csv")
    assert summary(found) == [
        ("out_of_period", 2, 1001, 12500),
        ("out_of_period", 9, 999, 3000),
        ("out_of_period", 10, 1010, 4000),
    ]
    first = found[found["ledger_line"] == 2]["explanation"].iloc[0]
    assert "dated 2026-09-30T23:59:00+08:00, before the period" in first
    assert "logged log 1001 at 2026-10-01T00:00:05+08:00, inside the period" in first


def test_request_id_only() -> None:
    ledger, found = outcome("request-id-only.csv")
    assert ledger.match_key == "request_id"
    assert summary(found) == [
        ("missing_in_ledger", None, 1008, 20000),
        ("missing_in_logs", 8, None, 555),
    ]


def test_type_mismatch() -> None:
    _, found = outcome("type-mismatch.csv")
    assert summary(found) == [("amount_mismatch", 5, 1004, 4000), ("amount_mismatch", 7, 1006, 10)]


@pytest.mark.parametrize(
    ("name", "message"),
    [("empty.csv", "the file is empty"), ("workbook.xlsx", "this is an Excel workbook")],
)
def test_unreadable_files(name: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        read(name)
    assert err.value.file == str(LEDGERS / name)


def test_every_fixture_is_covered() -> None:
    documented = (LEDGERS / "README.md").read_text(encoding="utf-8")
    for path in sorted(Path(LEDGERS).iterdir()):
        if path.suffix in (".csv", ".xlsx") and path.name != "gateway-logs.csv":
            assert f"`{path.name}`" in documented, path.name
