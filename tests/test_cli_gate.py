"""The audit gate as a CI job sees it: exit statuses per --fail-on level, JUnit, step summary."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import Gateway, run_cli

from reconcile.demo import run as demo


@pytest.fixture(scope="module")
def snapshot(demo_gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fetched")
    env = {
        "RECONCILE_BASE_URL": demo_gateway.url,
        "RECONCILE_API_KEYS": ",".join(demo_gateway.keys),
    }
    ran = run_cli("fetch", "--period", "2026-10", "--tz", "Asia/Shanghai", "--out", out, env=env)
    assert ran.code == 0, ran.stderr
    assert (out / "snapshot" / "manifest.json").is_file()
    assert not (out / "summary.json").exists()  # fetch stores the snapshot only
    return out


def _run(snapshot: Path, out: Path, *extra: str | Path, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return run_cli(
        "run",
        "--from-snapshot",
        snapshot,
        "--rules",
        demo.FILES.rules,
        "--ledger",
        demo.FILES.ledger,
        "--out",
        out,
        "--quiet",
        *extra,
        env=env,
    )


@pytest.mark.parametrize(
    ("level", "code"), [("never", 0), ("error", 1), ("warning", 1), ("info", 1)]
)
def test_exit_status_follows_the_fail_on_level(
    snapshot: Path, tmp_path: Path, level: str, code: int
) -> None:
    ran = _run(snapshot, tmp_path / "out", "--fail-on", level)
    assert ran.code == code, ran.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == ("pass" if code == 0 else "fail")


def test_unknown_fail_on_level_is_a_usage_error(snapshot: Path, tmp_path: Path) -> None:
    ran = _run(snapshot, tmp_path / "out", "--fail-on", "sometimes")
    assert ran.code == 2
    assert not (tmp_path / "out").exists()


def test_ci_gets_junit_and_a_step_summary(snapshot: Path, tmp_path: Path) -> None:
    step = tmp_path / "step-summary.md"
    step.write_text("# earlier step\n", encoding="utf-8")
    junit = tmp_path / "junit" / "reconcile.xml"
    ran = _run(snapshot, tmp_path / "out", "--junit", junit, env={"GITHUB_STEP_SUMMARY": str(step)})
    assert ran.code == 1
    text = step.read_text(encoding="utf-8")
    assert text.startswith("# earlier step\n")  # appended, not overwritten
    assert "FAIL" in text
    assert "pricing_mismatch" in text.replace("\\_", "_")  # Markdown escapes underscores
    suite = ET.parse(junit).getroot()
    failed = {
        case.get("name", "") for case in suite.iter("testcase") if case.find("failure") is not None
    }
    assert any("pricing_mismatch" in name for name in failed)
    assert not any("not_repriceable" in name for name in failed)
    # no terminal: plain lines, no progress bar control codes
    assert "\x1b[" not in ran.stdout + ran.stderr
