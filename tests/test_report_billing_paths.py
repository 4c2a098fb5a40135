"""The report shows how each consume log was billed and why unchecked logs are unchecked:
summary.json and the workbook's Summary count consume logs by billing path and not
re-priceable logs by reason; every pricing finding carries its billing path.

One run of the pricing corpus (fixtures/pricing: every path, four reasons) through the CLI
against the built-in gateway; each test reads a different output of it.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, run_cli
from openpyxl import load_workbook
from pricing_helpers import serving

from reconcile.pricing.reasons import REASON_TEXT

CORPUS = ROOT / "fixtures" / "pricing"
ROWS = [json.loads(line) for line in (CORPUS / "logs.jsonl").read_text("utf-8").splitlines()]

#: id -> billing path, as fixtures/pricing/README.md works each log out
PATHS = {
    101: "text",
    102: "cache",
    103: "text",
    104: "cache",
    105: "chained",
    106: "cache",
    107: "per_call",
    108: "image",
    109: "image",
    110: "task_submit",
    111: "task_settle",
    112: "audio",
    113: "text+tools",
    114: "text+tools",
    115: "tiered",
    116: "tiered",
    117: "text+group_pair",
    118: "text",
    119: "unknown",
    120: "text+tools",
}
#: the corpus's not re-priceable logs: id -> reason code
UNCHECKED = {
    111: "task_settlement",
    114: "tool_price_missing",
    116: "tiered_expr",
    119: "other_unreadable",
}


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("paths") / "out"
    with serving(CORPUS / "logs.jsonl") as url:
        ran = run_cli(
            "run",
            "--period",
            "2026-02",
            "--rules",
            CORPUS / "rules.toml",
            "--out",
            where,
            "--quiet",
            env={"RECONCILE_BASE_URL": url, "RECONCILE_API_KEYS": ROWS[0]["key"]},
        )
    assert ran.code == 1, ran.stderr
    return where


def _charged(ids: list[int]) -> int:
    quota = {int(r["id"]): int(r["quota"]) for r in ROWS}
    return sum(quota[i] for i in ids)


def test_summary_counts_consume_logs_by_path_and_unchecked_logs_by_reason(out: Path) -> None:
    pricing = json.loads((out / "summary.json").read_text("utf-8"))["pricing"]
    assert pricing["not_repriceable_by_reason"] == {
        "other_unreadable": 1,
        "task_settlement": 1,
        "tiered_expr": 1,
        "tool_price_missing": 1,
    }
    assert sum(pricing["not_repriceable_by_reason"].values()) == pricing["not_repriceable"]["count"]
    by_path = pricing["logs_by_path"]
    want = {
        path: {"count": n, "quota": _charged([i for i, p in PATHS.items() if p == path])}
        for path, n in Counter(PATHS.values()).items()
    }
    assert by_path == want
    assert sum(v["count"] for v in by_path.values()) == pricing["consume_logs"] == len(ROWS)
    counts = [v["count"] for v in by_path.values()]
    assert counts == sorted(counts, reverse=True)  # largest first


def test_pricing_findings_carry_their_billing_path_in_the_csv(out: Path) -> None:
    with open(out / "discrepancies.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[-1] == "path"
    found = {int(r["log_id"]): r["path"] for r in rows}
    assert found == {i: PATHS[i] for i in (106, 118, *UNCHECKED)}


def _sheet_rows(ws: Any) -> list[list[object]]:
    return [[c for c in row if c is not None] for row in ws.iter_rows(values_only=True)]


def _section(rows: list[list[object]], title: str) -> list[list[object]]:
    """The rows under a Summary section's header, up to the blank row that ends it."""
    start = next(i for i, r in enumerate(rows) if r and r[0] == title)
    body = []
    for r in rows[start + 2 :]:
        if not r:
            break
        body.append(r)
    return body


def test_the_workbook_summary_shows_paths_and_reasons_and_findings_their_path(out: Path) -> None:
    book = load_workbook(next(out.glob("*.xlsx")), read_only=True)
    summary = _sheet_rows(book["Summary"])
    paths = {str(r[0]): r[1:3] for r in _section(summary, "Consume logs by billing path")}
    assert paths == {
        path: [n, _charged([i for i, p in PATHS.items() if p == path])]
        for path, n in Counter(PATHS.values()).items()
    }
    reasons = _section(summary, "Not re-priceable logs by reason")
    by_code = {str(r[0]): (r[1], r[2], r[-1]) for r in reasons}
    assert by_code == {code: (1, _charged([i]), REASON_TEXT[code]) for i, code in UNCHECKED.items()}
    assert "settlement" in str(by_code["task_settlement"][2])
    full = [list(r) for r in book["Discrepancies"].iter_rows(values_only=True)]
    at = next(i for i, r in enumerate(full) if "Billing path" in r)
    col, log_col = full[at].index("Billing path"), full[at].index("Log id")
    shown = {int(r[log_col]): r[col] for r in full[at + 1 :] if r[log_col] is not None}
    assert shown == {i: PATHS[i] for i in (106, 118, *UNCHECKED)}
