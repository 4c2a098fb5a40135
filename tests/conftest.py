"""Shared fixtures: the demo gateway and database servers on 127.0.0.1, and a way to run the CLI
as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from database_helpers import MyServer, PgServer, mysql_server, postgres_server
from jsonschema import Draft202012Validator, FormatChecker

from reconcile.demo import run as demo
from reconcile.report.summary import summary_schema

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


@dataclass(frozen=True)
class Gateway:
    url: str
    keys: list[str]


@pytest.fixture(scope="session")
def demo_gateway() -> Iterator[Gateway]:
    with demo.demo_gateway() as (url, keys):
        yield Gateway(url, keys)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """A real PostgreSQL server on 127.0.0.1 for the session (Debian's postgresql)."""
    yield from _started(postgres_server(), "PostgreSQL")


@pytest.fixture(scope="session")
def mysql() -> Iterator[MyServer]:
    """A real MariaDB server on 127.0.0.1 for the session (Debian's mariadb-server-core)."""
    yield from _started(mysql_server(), "MariaDB")


def _started(server: AbstractContextManager[T], name: str) -> Iterator[T]:
    """Where a server cannot start, its tests skip locally but fail in CI (CI=true): there a
    missing server is a broken setup, not a reason to test less."""
    try:
        running = server.__enter__()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{name} did not start: {exc}")
        pytest.skip(f"{name} did not start: {exc}")
    try:
        yield running
    finally:
        server.__exit__(None, None, None)


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> Ran:
    """Run `python -m reconcile ARGS` in a clean environment (no RECONCILE_* from the caller)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILE_", "GITHUB_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "reconcile", *map(str, args)],
        env={**base, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Ran(proc.returncode, proc.stdout, proc.stderr)


def sigterm_while_writing(
    *args: str | Path,
    where: Path,
    env: dict[str, str] | None = None,
    before: Callable[[], object] | None = None,
) -> Ran:
    """Run the CLI and send it SIGTERM the moment its report's staging directory appears in
    `where` (the --out's parent): a run stopped half-way through writing. `before` is called
    just before the signal (to check what the run holds then)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILE_", "GITHUB_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconcile", *map(str, args)],
        env={**base, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(where.glob(".*.partial-*")) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    assert proc.poll() is None, "the run ended before it began writing"
    if before is not None:
        before()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    return Ran(proc.returncode, stdout, stderr)


def summary_errors(summary: object) -> list[str]:
    """Where `summary` breaks the published summary.json schema (empty: it is valid)."""
    validator = Draft202012Validator(summary_schema(), format_checker=FormatChecker())
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(summary)]


@pytest.fixture(scope="session", autouse=True)
def every_summary_matches_the_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the suite: every summary.json any test wrote validates against the schema."""
    yield
    root = tmp_path_factory.getbasetemp()
    bad = {}
    for path in root.rglob("summary.json"):
        errors = summary_errors(json.loads(path.read_text(encoding="utf-8")))
        if errors:
            bad[str(path)] = errors[:3]
    assert not bad, bad
