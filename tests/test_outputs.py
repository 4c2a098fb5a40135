"""A failed run leaves no half-written report, and never damages the previous one."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.core.atomic import MARKER, atomic_directory, atomic_write_text
from reconcile.core.redact import Redactor
from reconcile.errors import InputError
from reconcile.settings import ApiKey


def test_a_failure_while_writing_leaves_the_earlier_report_untouched(tmp_path: Path) -> None:
    out = tmp_path / "2026-10"
    out.mkdir()
    (out / MARKER).write_text("", encoding="utf-8")  # an earlier report of this tool
    (out / "report.txt").write_text("earlier", encoding="utf-8")

    def write_half_then_fail() -> None:
        with atomic_directory(out) as staging:
            (staging / "report.txt").write_text("half", encoding="utf-8")
            raise RuntimeError("the workbook writer failed")

    with pytest.raises(RuntimeError):
        write_half_then_fail()
    assert (out / "report.txt").read_text(encoding="utf-8") == "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-10"]


def test_a_complete_write_replaces_the_whole_directory(tmp_path: Path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / MARKER).write_text("", encoding="utf-8")
    (out / "stale.csv").write_text("old", encoding="utf-8")
    with atomic_directory(out) as staging:
        (staging / "report.txt").write_text("new", encoding="utf-8")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "report.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_a_directory_without_the_marker_is_never_replaced(tmp_path: Path) -> None:
    out = tmp_path / "books"
    out.mkdir()
    (out / "ledger.csv").write_text("mine", encoding="utf-8")
    with pytest.raises(InputError, match="--out"), atomic_directory(out):
        pytest.fail("must not be reached")
    assert [p.name for p in out.iterdir()] == ["ledger.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["books"]


def test_atomic_write_text_creates_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "junit" / "audit.xml"
    atomic_write_text(target, "<testsuites/>")
    assert target.read_text(encoding="utf-8") == "<testsuites/>"
    assert [p.name for p in target.parent.iterdir()] == ["audit.xml"]


def test_redactor_scrubs_configured_keys_and_anything_shaped_like_one() -> None:
    key = ApiKey.of("sk-" + "a1" * 24)
    redact = Redactor([key])
    text = redact(f"GET /api/log/token?key={key.secret.get_secret_value()} and sk-{'Q' * 30}")
    assert key.secret.get_secret_value() not in text
    assert key.ref in text
    assert "Q" * 30 not in text


@pytest.mark.parametrize(
    ("errno_code", "reason"),
    [
        (28, "No space left on device"),
        (30, "Read-only file system"),
        (16, "Device or resource busy"),
    ],
)
def test_an_os_error_while_writing_the_report_is_one_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, errno_code: int, reason: str
) -> None:
    from report_helpers import make_result

    from reconcile import pipeline
    from reconcile.report import workbook

    def full_disk(*_: object) -> None:
        raise OSError(errno_code, reason)

    monkeypatch.setattr(workbook, "write_workbook", full_disk)
    out = tmp_path / "2026-10"
    with pytest.raises(InputError) as caught:
        pipeline.write_report(make_result(), out)
    assert str(caught.value) == f"{out}: --out: cannot write: {reason}"
    assert caught.value.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no half-written report left
