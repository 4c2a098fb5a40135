"""Ledgers keyed by request_id, and with no ids at all, against the demo gateway's month.

Both fixtures (fixtures/ledgers/make_demo_ledgers.py) book every spend log of 2026-10
exactly, so through the command line, as a user runs it, neither may leave a ledger
finding: the run's only findings are the demo's pricing ones.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import Gateway, run_cli
from match_helpers import LEDGERS

from reconcile.core.schema import OUTPUT_COLUMNS
from reconcile.demo import run as demo

ARGS = ("--period", "2026-10", "--tz", "Asia/Shanghai", "--rules", str(demo.FILES.rules))
LEDGER_CATEGORIES = (
    "missing_in_ledger",
    "missing_in_logs",
    "amount_mismatch",
    "duplicate_ledger",
    "out_of_period",
    "ambiguous_match",
    "unreadable_row",
)


def _findings(out: Path) -> list[dict[str, str]]:
    with (out / "discrepancies.csv").open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _check(out: Path, rows: int) -> None:
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["ledger"]["rows"] == rows
    counts = {c: summary["discrepancies"][c]["count"] for c in LEDGER_CATEGORIES}
    assert counts == dict.fromkeys(LEDGER_CATEGORIES, 0)
    assert summary["discrepancies"]["pricing_mismatch"]["count"] > 0  # the demo's own
    found = _findings(out)
    assert {f["source"] for f in found} == {"pricing"}
    assert list(found[0]) == OUTPUT_COLUMNS  # matched_on and path added at the end
    assert OUTPUT_COLUMNS[-2:] == ["matched_on", "path"]
    assert {f["matched_on"] for f in found} == {""}  # no ledger finding, so no key
    assert all(f["path"] for f in found if f["category"] == "pricing_mismatch")


def test_ledgers_by_request_id_and_without_ids_match_the_demo_month_exactly(
    demo_gateway: Gateway, tmp_path: Path
) -> None:
    env = {
        "RECONCILE_BASE_URL": demo_gateway.url,
        "RECONCILE_API_KEYS": ",".join(demo_gateway.keys),
    }
    by_request = LEDGERS / "demo-by-request-id.csv"
    rows = sum(1 for _ in by_request.open(encoding="utf-8")) - 1
    ran = run_cli("run", *ARGS, "--ledger", by_request, "--out", tmp_path / "a", env=env)
    assert ran.code == 1, ran.stderr  # the demo's pricing findings, nothing else
    _check(tmp_path / "a", rows)

    no_ids = LEDGERS / "demo-no-ids.csv"
    offline = run_cli(
        "run",
        *ARGS,
        "--ledger",
        no_ids,
        "--ledger-profile",
        LEDGERS / "demo-no-ids.profile.toml",
        "--from-snapshot",
        tmp_path / "a",
        "--out",
        tmp_path / "b",
    )
    assert offline.code == 1, offline.stderr
    _check(tmp_path / "b", rows)


def test_ledger_findings_say_which_key_matched_them(demo_gateway: Gateway, tmp_path: Path) -> None:
    env = {
        "RECONCILE_BASE_URL": demo_gateway.url,
        "RECONCILE_API_KEYS": ",".join(demo_gateway.keys),
    }
    ran = run_cli("run", *ARGS, "--ledger", demo.FILES.ledger, "--out", tmp_path, env=env)
    assert ran.code == 1, ran.stderr
    found = _findings(tmp_path)
    by_source = {(f["source"], f["matched_on"]) for f in found}
    # the demo's ledger is keyed by log_id; a log with no row was matched on nothing
    assert ("ledger", "log_id") in by_source
    assert all(on in ("", "log_id") for source, on in by_source if source == "ledger")
    assert all(on == "" for source, on in by_source if source == "pricing")
    missing = [f for f in found if f["category"] == "missing_in_ledger"]
    assert missing
    assert all(f["matched_on"] == "" for f in missing)
    # the billing path is the pricing stage's: ledger findings leave it empty
    assert {f["path"] for f in found if f["source"] == "ledger"} == {""}
