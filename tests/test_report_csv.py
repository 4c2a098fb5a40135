"""discrepancies.csv: every finding, the sheet's columns, and nothing a spreadsheet would run."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from report_helpers import HOSTILE, clean_result, make_result

from reconcile.core.schema import FINDING_COLUMNS, MONEY_COLUMNS, OUTPUT_COLUMNS, findings_frame
from reconcile.report import csvfile
from reconcile.report.csvfile import write_discrepancies_csv
from reconcile.report.safe import csv_text


def _read(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("@SUM(1)", "'@SUM(1)"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("＝1+1", "'＝1+1"),
        ("gpt-4o", "gpt-4o"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_text_a_spreadsheet_would_run_is_neutralised(text: str, safe: str) -> None:
    assert csv_text(text) == safe


def test_columns_order_and_encoding(tmp_path: Path) -> None:
    result = make_result()
    path = tmp_path / "d.csv"
    write_discrepancies_csv(result.findings, path)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the file as UTF-8
    rows = _read(path)
    assert rows[0] == OUTPUT_COLUMNS
    assert rows[0][: len(FINDING_COLUMNS) + 2] == [*FINDING_COLUMNS, *MONEY_COLUMNS]  # added after
    assert len(rows) == 1 + len(result.findings)
    # Same order as the findings (money at stake first), read back by pandas as well.
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(back.columns) == rows[0]
    assert back["log_id"].tolist() == [
        "" if pd.isna(v) else str(v) for v in result.findings["log_id"]
    ]
    assert "研发部" in back["token_name"].tolist()


def test_hostile_text_is_prefixed_and_numbers_stay_numbers(tmp_path: Path) -> None:
    result = make_result()
    path = tmp_path / "d.csv"
    write_discrepancies_csv(result.findings, path)
    rows = _read(path)
    header = rows[0]
    tokens = {r[header.index("token_name")] for r in rows[1:]}
    models = {r[header.index("model_name")] for r in rows[1:]}
    cells = tokens | models
    for bad in (HOSTILE[0], HOSTILE[1], HOSTILE[2], HOSTILE[3]):
        assert bad not in cells
    assert "'" + HOSTILE[0] in tokens
    assert "'@SUM(1)" in tokens
    assert "'+1" in models
    assert "'-1" in models
    for row in rows[1:]:
        for name in ("log_quota", "diff_quota", "log_id"):
            value = row[header.index(name)]
            assert value == "" or value.isdigit()
    first = rows[1]
    assert first[header.index("diff_quota")] == "30000"
    assert first[header.index("diff_amount")] == "0.060000"  # exact decimal text
    assert first[header.index("currency")] == "USD"


def test_control_characters_at_the_start_are_neutralised(tmp_path: Path) -> None:
    findings = findings_frame(
        pd.DataFrame(
            {
                "category": ["missing_in_logs", "missing_in_logs"],
                "severity": ["error", "error"],
                "token_name": ["\tleft", "\rright"],
                "diff_quota": [1, 2],
            }
        )
    )
    path = tmp_path / "d.csv"
    write_discrepancies_csv(findings, path)
    rows = _read(path)
    assert [r[rows[0].index("token_name")] for r in rows[1:]] == ["'\tleft", "'\rright"]


def test_chunking_does_not_change_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    findings = make_result().findings
    whole, chunked = tmp_path / "a.csv", tmp_path / "b.csv"
    write_discrepancies_csv(findings, whole)
    monkeypatch.setattr(csvfile, "CHUNK_ROWS", 4)
    write_discrepancies_csv(findings, chunked)
    assert whole.read_bytes() == chunked.read_bytes()


def test_no_findings_writes_the_header_only(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    write_discrepancies_csv(clean_result().findings, path)
    assert _read(path) == [OUTPUT_COLUMNS]
