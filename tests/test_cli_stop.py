"""A run stopped by SIGTERM or Ctrl-C leaves nothing behind: no half-written report, no
scratch snapshot, whatever instant the signal lands at, and it ends as a stopped run (143,
130), never as an internal error."""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Gateway, sigterm_while_writing

from reconcile.cliexit import Terminated, on_sigterm, stopped
from reconcile.core import atomic
from reconcile.core.atomic import atomic_directory
from reconcile.demo import run as demo


@pytest.fixture
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises Terminated in this process, as the CLI sets it up."""
    before = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def test_sigterm_right_after_the_staging_directory_is_made_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sigterm_raises: None
) -> None:
    made = tempfile.mkdtemp

    def mkdtemp_then_signal(*args: object, **kwargs: object) -> str:
        path = made(*args, **kwargs)  # type: ignore[call-overload]
        os.kill(os.getpid(), signal.SIGTERM)  # lands before mkdtemp has even returned
        return str(path)

    monkeypatch.setattr(atomic.tempfile, "mkdtemp", mkdtemp_then_signal)
    with pytest.raises(Terminated), atomic_directory(tmp_path / "report") as staging:
        (staging / "result.txt").write_text("{}")
    assert list(tmp_path.iterdir()) == []


def test_sigterm_while_a_report_replaces_the_last_one_leaves_one_whole_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sigterm_raises: None
) -> None:
    out = tmp_path / "report"
    with atomic_directory(out) as staging:
        (staging / "result.txt").write_text("old")
    swap = atomic._swap_in

    def swap_with_a_signal_half_way(staging: Path, target: Path) -> None:
        real_rename = Path.rename

        def rename(self: Path, to: Path) -> Path:
            result = real_rename(self, to)
            if self == target:  # the old report moved aside, the new not yet in place
                os.kill(os.getpid(), signal.SIGTERM)
            return result

        monkeypatch.setattr(Path, "rename", rename)
        try:
            swap(staging, target)
        finally:
            monkeypatch.setattr(Path, "rename", real_rename)

    monkeypatch.setattr(atomic, "_swap_in", swap_with_a_signal_half_way)
    with pytest.raises(Terminated), atomic_directory(out) as staging:
        (staging / "result.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["report"]
    assert (out / "result.txt").read_text() == "new"


def test_an_error_raised_while_a_signal_unwinds_the_run_is_the_signal() -> None:
    def unwind() -> None:
        try:
            raise Terminated
        except Terminated:
            raise ValueError("Can't close the ZIP file: a writing handle is open") from None

    with pytest.raises(ValueError, match="ZIP") as raised:
        unwind()
    assert isinstance(stopped(raised.value), Terminated)
    assert stopped(ValueError("a defect")) is None


def test_sigterm_during_a_live_run_removes_its_scratch_snapshot(
    demo_gateway: Gateway, tmp_path: Path
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {
        "RECONCILE_BASE_URL": demo_gateway.url,
        "RECONCILE_API_KEYS": ",".join(demo_gateway.keys),
        "TMPDIR": str(scratch),
    }
    args = ["run", "--period", "2026-10", "--tz", "Asia/Shanghai", "--rules", demo.FILES.rules,
            "--ledger", demo.FILES.ledger, "--out", tmp_path / "report", "--quiet"]  # fmt: skip

    def scratch_is_there() -> None:
        assert [p for p in scratch.iterdir() if p.name.startswith("reconcile-fetch-")]

    ran = sigterm_while_writing(*args, where=tmp_path, env=env, before=scratch_is_there)
    assert ran.code == 143, ran.stderr
    assert "Traceback" not in ran.stderr
    assert [p.name for p in scratch.iterdir()] == []  # the scratch snapshot is gone too
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "tmp")
    assert left in ([], ["report"])
