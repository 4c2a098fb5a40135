"""Output piped to a reader that stops early (`| head -1`), and the generated CLI reference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconcile.clihelp import REFERENCE, REGENERATE, reference
from reconcile.demo import run as demo


def _to_closed_pipe(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI with stdout a real pipe whose reader has already gone: its first write
    fails as it does under `| head -1` once head has its line."""
    read, write = os.pipe()
    os.close(read)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILE_", "GITHUB_"))}
    env["COLUMNS"] = "100"
    try:
        return subprocess.run(
            [sys.executable, "-m", "reconcile", *map(str, args)],
            stdout=write,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["run", "--help"],
        ["rules", "check", demo.FILES.rules],
    ],
    ids=["help", "run-help", "rules-check"],
)
def test_a_reader_that_closes_early_gives_141_without_a_traceback(args: list[str]) -> None:
    proc = _to_closed_pipe(*args)
    # 141 = 128 + SIGPIPE, as for any program its reader stopped; 1 would mean findings
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""  # not a traceback, not "Exception ignored ... BrokenPipeError"


def test_a_reader_that_reads_everything_still_gets_0() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reconcile", "rules", "check", str(demo.FILES.rules)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith(f"ok: {demo.FILES.rules}")


def test_docs_cli_md_is_the_current_help() -> None:
    expected = reference()
    current = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
    assert current == expected, f"docs/cli.md is stale: regenerate it with `{REGENERATE}`"


def test_the_reference_holds_every_command_with_its_options_and_exit_statuses() -> None:
    text = reference()
    for command in ("run", "fetch", "demo", "rules check", "rules pull", "rules diff"):
        assert f"\n## reconcile {command}\n" in text
    run = text.split("## reconcile run\n", 1)[1].split("\n## ", 1)[0]
    for needle in ("--from-snapshot", "--fail-on", "-q, --quiet", "RECONCILE_TIMEZONE", "141"):
        assert needle in run
