"""The pricing corpus (fixtures/pricing): every billing path's logs get the right verdict,
through the library and through the CLI against the built-in gateway."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
from conftest import ROOT, run_cli
from pricing_helpers import frame

from reconcile.pricing.rules import load_rules
from reconcile.pricing.stage import price_logs

CORPUS = ROOT / "fixtures" / "pricing"
ROWS = [json.loads(line) for line in (CORPUS / "logs.jsonl").read_text("utf-8").splitlines()]
KEY = ROWS[0]["key"]

#: id -> (status, path, expected quota or reason code), as fixtures/pricing/README.md works out
VERDICTS: dict[int, tuple[str, str, int | str]] = {
    101: ("ok", "text", 2250),
    102: ("ok", "cache", 3625),
    103: ("ok", "text", 3750150),
    104: ("ok", "cache", 11925),
    105: ("ok", "chained", 11925),
    106: ("mismatch", "cache", 2850),
    107: ("ok", "per_call", 20000),
    108: ("ok", "image", 120000),
    109: ("ok", "image", 20000),
    110: ("ok", "task_submit", 666667),
    111: ("not_repriceable", "task_settle", "task_settlement"),
    112: ("ok", "audio", 16375),
    113: ("ok", "text+tools", 17250),
    114: ("not_repriceable", "text+tools", "tool_price_missing"),
    115: ("ok", "tiered", 320000),
    116: ("not_repriceable", "tiered", "tiered_expr"),
    117: ("ok", "text+group_pair", 2025),
    118: ("mismatch", "text", 2250),
    119: ("not_repriceable", "unknown", "other_unreadable"),
    120: ("ok", "text+tools", 350),
}


def test_every_path_of_the_corpus_gets_its_verdict() -> None:
    logs = frame([{k: v for k, v in r.items() if k != "key"} for r in ROWS])
    result = price_logs(logs, load_rules(CORPUS / "rules.toml"), ZoneInfo("UTC"))
    p = result.priced.set_index("id")
    assert sorted(p.index) == sorted(VERDICTS)
    for log_id, (status, path, want) in VERDICTS.items():
        row = p.loc[log_id]
        assert (row["status"], row["path"]) == (status, path), (log_id, row["reason"])
        if isinstance(want, int):
            assert row["expected_quota"] == want, log_id
        else:
            assert row["reason_code"] == want, log_id
            assert row["expected_quota"] is pd.NA
    assert result.not_repriceable_reasons == {
        "other_unreadable": 1,
        "task_settlement": 1,
        "tiered_expr": 1,
        "tool_price_missing": 1,
    }
    assert "charging its 4000 cached tokens twice" in p.loc[106, "reason"]
    assert p.loc[118, "reason"] == "gateway used model_ratio 1.5, contract 1.25"


def test_the_corpus_through_the_cli_against_the_built_in_gateway(tmp_path: Path) -> None:
    from pricing_helpers import serving

    with serving(CORPUS / "logs.jsonl") as url:
        ran = run_cli(
            "run",
            "--period",
            "2026-02",
            "--rules",
            CORPUS / "rules.toml",
            "--out",
            tmp_path / "out",
            "--quiet",
            env={"RECONCILE_BASE_URL": url, "RECONCILE_API_KEYS": KEY},
        )
    assert ran.code == 1, ran.stderr  # the double charge and the planted overcharge
    with open(tmp_path / "out" / "discrepancies.csv", encoding="utf-8-sig", newline="") as fh:
        found = {int(r["log_id"]): r for r in csv.DictReader(fh)}
    assert {i: (r["category"], r["severity"]) for i, r in found.items()} == {
        106: ("pricing_mismatch", "error"),
        118: ("pricing_mismatch", "error"),
        111: ("not_repriceable", "warning"),
        114: ("not_repriceable", "warning"),
        116: ("not_repriceable", "warning"),
        119: ("not_repriceable", "error"),
    }
    assert "cached tokens twice" in found[106]["explanation"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text("utf-8"))
    assert summary["discrepancies"]["pricing_mismatch"] == {"count": 2, "quota": 6000 + 450}
    assert summary["discrepancies"]["not_repriceable"]["count"] == 4
    assert "4 of 20 consume log(s) (-252,166 quota) could not be re-priced" in ran.stdout
