"""Where the outputs go: --out never destroys what this tool did not write, and an output that
cannot be written is one line with exit 2, never a traceback (nor exit 1, which means findings).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import Gateway, run_cli, sigterm_while_writing

from reconcile.core.atomic import MARKER
from reconcile.demo import run as demo


@pytest.fixture(scope="module")
def snapshot(demo_gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fetched") / "snap"
    ran = run_cli(
        "fetch",
        "--period",
        "2026-10",
        "--tz",
        "Asia/Shanghai",
        "--out",
        out,
        env=_env(demo_gateway),
    )
    assert ran.code == 0, ran.stderr
    assert (out / MARKER).is_file()
    return out


def _env(gw: Gateway) -> dict[str, str]:
    return {"RECONCILE_BASE_URL": gw.url, "RECONCILE_API_KEYS": ",".join(gw.keys)}


def _rerun(
    snapshot: Path,
    out: str | Path,
    *extra: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
):  # type: ignore[no-untyped-def]
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
        cwd=cwd,
        env=env,
    )


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_out_dot_in_the_folder_holding_the_ledger_deletes_nothing(
    demo_gateway: Gateway, tmp_path: Path
) -> None:
    work = tmp_path / "books"
    work.mkdir()
    shutil.copy(demo.FILES.ledger, work / "ledger.csv")
    shutil.copy(demo.FILES.rules, work / "rules.toml")
    (work / "notes.txt").write_text("do not lose me", encoding="utf-8")
    before = _tree(work)
    ran = run_cli(
        "run",
        "--period",
        "2026-10",
        "--tz",
        "Asia/Shanghai",
        "--rules",
        "rules.toml",
        "--ledger",
        "ledger.csv",
        "--out",
        ".",
        cwd=work,
        env=_env(demo_gateway),
    )
    assert ran.code == 2, ran.stderr
    assert "--out" in _one_error_line(ran.stderr)
    assert _tree(work) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["books"]  # no staging left behind


def test_out_naming_a_file_leaves_the_file(snapshot: Path, tmp_path: Path) -> None:
    target = tmp_path / "quarterly.xlsx"
    target.write_bytes(b"the finance team's own workbook")
    ran = _rerun(snapshot, target)
    assert ran.code == 2
    line = _one_error_line(ran.stderr)
    assert "quarterly.xlsx" in line
    assert "--out" in line
    assert target.read_bytes() == b"the finance team's own workbook"


def test_fetch_and_demo_refuse_a_directory_they_did_not_write(
    demo_gateway: Gateway, tmp_path: Path
) -> None:
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "ledger.csv").write_text("log_id,quota\n1,2\n", encoding="utf-8")
    fetched = run_cli("fetch", "--period", "2026-10", "--out", keep, env=_env(demo_gateway))
    assert fetched.code == 2
    assert "--out" in _one_error_line(fetched.stderr)
    ran_demo = run_cli("demo", "--out", keep)
    assert ran_demo.code == 2
    assert "--out" in _one_error_line(ran_demo.stderr)
    assert _tree(keep) == {"ledger.csv": b"log_id,quota\n1,2\n"}


def test_a_report_directory_is_replaced_by_the_next_run(snapshot: Path, tmp_path: Path) -> None:
    out = tmp_path / "2026-10"
    assert _rerun(snapshot, out).code == 1
    (out / "stale.txt").write_text("from the first run's reviewer", encoding="utf-8")
    again = _rerun(snapshot, out)
    assert again.code == 1, again.stderr
    assert not (out / "stale.txt").exists()  # a directory we wrote is ours to replace
    assert (out / MARKER).is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _rerun(snapshot, empty).code == 1


def test_a_report_written_before_markers_existed_is_replaced(
    snapshot: Path, tmp_path: Path
) -> None:
    out = tmp_path / "old"
    assert _rerun(snapshot, out).code == 1
    (out / MARKER).unlink()
    for day in (out / "snapshot").glob("logs-*.parquet"):  # then a snapshot had one file
        day.rename(out / "snapshot" / "logs.parquet")
    assert _rerun(snapshot, out).code == 1
    assert (out / MARKER).is_file()


def test_unwritable_outputs_are_exit_2_with_one_line(snapshot: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    # --out below a file: the directory cannot be created
    ran = _rerun(snapshot, blocker / "report")
    assert ran.code == 2
    assert "--out" in _one_error_line(ran.stderr)
    # --junit below a file
    ran = _rerun(snapshot, tmp_path / "r1", "--junit", blocker / "junit.xml")
    assert ran.code == 2
    assert "--junit" in _one_error_line(ran.stderr)
    # --junit naming a directory is refused before any work
    ran = _rerun(snapshot, tmp_path / "r2", "--junit", tmp_path)
    assert ran.code == 2
    assert "--junit" in _one_error_line(ran.stderr)
    assert not (tmp_path / "r2").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_under_the_step_summary_is_exit_2(snapshot: Path, tmp_path: Path) -> None:
    ran = _rerun(snapshot, tmp_path / "r", env={"GITHUB_STEP_SUMMARY": "/dev/full"})
    assert ran.code == 2
    line = _one_error_line(ran.stderr)
    assert "GITHUB_STEP_SUMMARY" in line
    assert "space" in line.lower()


def test_an_unexpected_error_is_exit_70_with_a_request_to_report(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import reconcile.pipeline as p\n"
        "def boom(*a, **k):\n"
        "    raise KeyError('sk-secret-in-a-message')\n"
        "p.compute = boom\n"
        "from reconcile.cli import main\n"
        f"sys.argv = ['reconcile', 'run', '--period', '2026-10',"
        f" '--rules', {str(demo.FILES.rules)!r}, '--out', {str(tmp_path / 'out')!r}]\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 70
    assert "Traceback" not in proc.stderr
    assert "please report" in proc.stderr
    assert "KeyError" in proc.stderr
    assert "sk-secret" not in proc.stderr + proc.stdout


def test_the_current_month_is_an_open_period_and_fails(
    demo_gateway: Gateway, tmp_path: Path
) -> None:
    month = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    args = ("run", "--period", month, "--tz", "Asia/Shanghai", "--rules", demo.FILES.rules)
    ran = run_cli(*args, "--out", tmp_path / "a", env=_env(demo_gateway))
    assert ran.code == 1, ran.stderr  # an unfinished month cannot pass
    assert "INCOMPLETE" in ran.stdout
    summary = json.loads((tmp_path / "a" / "summary.json").read_text(encoding="utf-8"))
    assert summary["open_period"]["open"] is True
    assert summary["discrepancies"]["open_period"]["count"] == 1
    ungated = run_cli(*args, "--fail-on", "never", "--out", tmp_path / "b", env=_env(demo_gateway))
    assert ungated.code == 0
    assert "INCOMPLETE" in ungated.stdout  # reported, never shown as a pass
    assert "PASS" not in ungated.stdout


def test_help_lists_exit_codes_settings_and_defaults() -> None:
    ran = run_cli("run", "--help", env={"COLUMNS": "200"})
    assert ran.code == 0
    text = " ".join(ran.stdout.split())
    for code in ("0 reconciled", "1 findings", "2 bad input", "3 the gateway", "70 an unexpected"):
        assert code in text
    for setting in (
        "RECONCILE_BASE_URL",
        "RECONCILE_API_KEYS",
        "RECONCILE_TIMEZONE (default: UTC)",
    ):
        assert setting in text
    assert "exclude each other" in text
    assert "default: reports/<period>" in text
    version = run_cli("--version")
    assert version.code == 0
    assert version.stdout.startswith("reconcile ")


def test_quiet_prints_the_verdict_only_and_the_console_shows_money(
    snapshot: Path, tmp_path: Path
) -> None:
    quiet = _rerun(snapshot, tmp_path / "q")  # _rerun passes --quiet
    assert quiet.code == 1
    assert quiet.stdout.splitlines()[0].startswith("FAIL  2026-10")
    assert len(quiet.stdout.splitlines()) == 1
    loud = run_cli(
        "run",
        "--from-snapshot",
        snapshot,
        "--rules",
        demo.FILES.rules,
        "--ledger",
        demo.FILES.ledger,
        "--out",
        tmp_path / "l",
    )
    assert loud.code == 1
    assert "USD 0.56784" in loud.stdout  # the demo's contract overcharge, in money
    assert "8,341,006 quota" in loud.stdout


def test_a_rerun_without_tz_uses_the_snapshots_time_zone(snapshot: Path, tmp_path: Path) -> None:
    # the snapshot was fetched in Asia/Shanghai; no --tz and no RECONCILE_TIMEZONE here
    ran = _rerun(snapshot, tmp_path / "r", "--period", "2026-10")
    assert ran.code == 1, ran.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text(encoding="utf-8"))
    assert summary["period"]["timezone"] == "Asia/Shanghai"
    wrong = _rerun(snapshot, tmp_path / "w", "--period", "2026-10", "--tz", "UTC")
    assert wrong.code == 2
    line = _one_error_line(wrong.stderr)
    assert "Asia/Shanghai" in line
    assert "UTC" in line


def test_quiet_fetch_prints_no_progress(demo_gateway: Gateway, tmp_path: Path) -> None:
    args = ["fetch", "--period", "2026-10", "--tz", "Asia/Shanghai", "--out"]
    loud = run_cli(*args, tmp_path / "loud", env=_env(demo_gateway))
    assert loud.code == 0
    assert "fetch: 2/2 windows" in loud.stderr  # progress goes to stderr
    quiet = run_cli(*args, tmp_path / "quiet", "-q", env=_env(demo_gateway))
    assert quiet.code == 0
    assert quiet.stderr == ""  # -q: the result line, warnings and errors only
    assert quiet.stdout.splitlines() == [
        line.replace("loud", "quiet") for line in loud.stdout.splitlines()
    ]


def test_sigterm_while_the_report_is_written_leaves_no_partial_directory(
    snapshot: Path, tmp_path: Path
) -> None:
    # Regression: SIGTERM killed the run where it stood and left `.report.partial-*` behind.
    out = tmp_path / "report"
    args = ["run", "--from-snapshot", snapshot, "--rules", demo.FILES.rules, "--ledger",
            demo.FILES.ledger, "--out", out, "--quiet"]  # fmt: skip
    ran = sigterm_while_writing(*args, where=tmp_path)
    stderr = ran.stderr
    assert ran.code == 143, stderr
    assert "terminated" in _one_error_line(stderr)
    left = [p.name for p in tmp_path.iterdir()]
    assert not [name for name in left if ".partial" in name], left
    assert left == [] or (out / "summary.json").exists()  # at most a finished report
