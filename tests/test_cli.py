"""The product end to end through its command line, as a finance user or a CI job runs it."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Gateway, run_cli

from reconcile.core.schema import CATEGORIES
from reconcile.demo import run as demo

EXPECTED = json.loads(demo.FILES.expected.read_text(encoding="utf-8"))


def _summary(out: Path) -> dict[str, object]:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _assert_matches_fixture(summary: dict[str, object]) -> None:
    for field in ("period", "logs", "expected_quota", "discrepancies", "status"):
        assert summary[field] == EXPECTED[field], field
    ledger = summary["ledger"]
    assert isinstance(ledger, dict)
    assert {k: ledger[k] for k in ("rows", "quota")} == EXPECTED["ledger"]


def _all_written_text(*paths: Path) -> bytes:
    blob = b""
    for root in paths:
        for f in sorted(p for p in root.rglob("*") if p.is_file()):
            blob += f.read_bytes()
    return blob


def test_demo_produces_the_numbers_the_fixture_was_built_with(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    ran = run_cli("demo", "--out", out)
    assert ran.code == 1, ran.stderr  # the demo has planted discrepancies
    assert (out / "reconciliation-2026-10.xlsx").stat().st_size > 0
    assert (out / "discrepancies.csv").is_file()
    summary = _summary(out)
    assert summary["schema_version"] == 1
    assert set(CATEGORIES) <= set(summary["discrepancies"])  # type: ignore[arg-type]
    _assert_matches_fixture(summary)
    assert "FAIL" in ran.stdout
    # The fake keys never leave the process: not in any output file, log line or message.
    blob = _all_written_text(out) + ran.stdout.encode() + ran.stderr.encode()
    for key in demo.demo_keys():
        assert key.encode() not in blob
        assert key[3:20].encode() not in blob


def test_run_from_snapshot_repeats_the_network_run_offline(
    demo_gateway: Gateway, tmp_path: Path
) -> None:
    env = {
        "RECONCILE_BASE_URL": demo_gateway.url,
        "RECONCILE_API_KEYS": ",".join(demo_gateway.keys),
    }
    args = ("--period", "2026-10", "--tz", "Asia/Shanghai", "--rules", demo.FILES.rules)
    first = run_cli("run", *args, "--ledger", demo.FILES.ledger, "--out", tmp_path / "a", env=env)
    assert first.code == 1, first.stderr

    def offline(out: str) -> dict[str, object]:
        """Rerun with no gateway settings at all, only the snapshot the first run wrote."""
        ran = run_cli(
            "run",
            *args,
            "--ledger",
            demo.FILES.ledger,
            "--from-snapshot",
            tmp_path / "a",
            "--out",
            tmp_path / out,
        )
        assert ran.code == 1, ran.stderr
        return _summary(tmp_path / out)

    a = _summary(tmp_path / "a")
    assert a == offline("b")
    _assert_matches_fixture(a)
    # The same snapshot, rules and ledger give a byte-identical workbook, so CI can diff reports.
    assert offline("c") == a
    xlsx = "reconciliation-2026-10.xlsx"
    assert (tmp_path / "b" / xlsx).read_bytes() == (tmp_path / "c" / xlsx).read_bytes()
    blob = _all_written_text(tmp_path)
    for key in demo_gateway.keys:
        assert key.encode() not in blob


def test_fail_on_never_passes_the_same_findings(demo_gateway: Gateway, tmp_path: Path) -> None:
    env = {
        "RECONCILE_BASE_URL": demo_gateway.url,
        "RECONCILE_API_KEYS": ",".join(demo_gateway.keys),
        "RECONCILE_TIMEZONE": "Asia/Shanghai",
        "RECONCILE_RULES": str(demo.FILES.rules),
    }
    ran = run_cli("run", "--period", "2026-10", "--fail-on", "never", "--out", tmp_path, env=env)
    assert ran.code == 0, ran.stderr
    summary = _summary(tmp_path)
    assert summary["status"] == "pass"
    assert (
        summary["discrepancies"]["pricing_mismatch"]
        == EXPECTED["discrepancies"]["pricing_mismatch"]
    )  # type: ignore[index]


def _one_line_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_missing_ledger_file_is_exit_2_naming_the_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ran = run_cli(
        "run",
        "--period",
        "2026-10",
        "--rules",
        demo.FILES.rules,
        "--ledger",
        tmp_path / "nope.csv",
        "--out",
        out,
    )
    assert ran.code == 2
    assert "nope.csv" in _one_line_error(ran.stderr)
    assert not out.exists()  # no partial output


def test_rules_with_a_syntax_error_is_exit_2_naming_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text('quota_per_unit = 500000\n[[model]]\nmatch = "gpt-4o\n', encoding="utf-8")
    ran = run_cli("run", "--period", "2026-10", "--rules", bad, "--out", tmp_path / "out")
    assert ran.code == 2
    line = _one_line_error(ran.stderr)
    assert "rules.toml" in line
    assert "line 3" in line or ":3" in line
    checked = run_cli("rules", "check", bad)
    assert checked.code == 2


def test_a_month_that_does_not_exist_is_exit_2() -> None:
    ran = run_cli("run", "--period", "2026-13", "--rules", demo.FILES.rules)
    assert ran.code == 2
    assert "2026-13" in _one_line_error(ran.stderr)


def test_a_key_the_gateway_rejects_is_exit_3_without_the_key(
    demo_gateway: Gateway, tmp_path: Path
) -> None:
    wrong = "sk-" + "Z" * 48
    env = {"RECONCILE_BASE_URL": demo_gateway.url, "RECONCILE_API_KEYS": wrong}
    ran = run_cli(
        "run",
        "--period",
        "2026-10",
        "--rules",
        demo.FILES.rules,
        "--out",
        tmp_path / "out",
        env=env,
    )
    assert ran.code == 3
    _one_line_error(ran.stderr)
    assert wrong not in ran.stderr + ran.stdout
    assert "Z" * 20 not in ran.stderr + ran.stdout
    assert not (tmp_path / "out").exists()


def test_rules_check_prints_what_the_rules_price() -> None:
    ran = run_cli("rules", "check", demo.FILES.rules)
    assert ran.code == 0, ran.stderr
    for pattern in ("gpt-4o-mini", "claude-sonnet-4*", "dall-e-3"):
        assert pattern in ran.stdout
    assert "2026-10-15" in ran.stdout
