"""Shared fixtures: the demo gateway on 127.0.0.1 and a way to run the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from database_helpers import MyServer, PgServer, mysql_server, postgres_server

from reconcile.demo import run as demo

ROOT = Path(__file__).resolve().parents[1]


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
    """A real PostgreSQL server on 127.0.0.1 for the session. Where it cannot start, the
    tests skip locally but fail in CI (CI=true): there a missing server is a broken setup."""
    try:
        server = postgres_server()
        running = server.__enter__()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL did not start: {exc}")
        pytest.skip(f"PostgreSQL did not start: {exc}")
    try:
        yield running
    finally:
        server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def mysql() -> Iterator[MyServer]:
    """A real MariaDB server on 127.0.0.1 for the session; as `postgres`, fails in CI."""
    try:
        server = mysql_server()
        running = server.__enter__()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"MariaDB did not start: {exc}")
        pytest.skip(f"MariaDB did not start: {exc}")
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
