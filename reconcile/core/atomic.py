"""Atomic report directories: a run either replaces the whole directory or leaves it untouched.

Only a directory this tool wrote may be replaced. Every directory it writes carries a marker
file (MARKER); `--out` naming anything else that holds files (a home directory, `.`, the
folder with the ledger in it) or naming a file is refused before anything is written,
because replacing it would delete what is there. An empty directory is fine, and so is a
report written before markers existed (recognised by holding only the names a report holds).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from reconcile.errors import InputError

#: The marker inside every report or snapshot directory this tool writes.
MARKER: Final = ".reconcile-output"
MARKER_TEXT: Final = (
    "Written by reconcile. The next run with the same --out replaces this whole directory.\n"
)
#: What a report directory written before markers existed holds (names, or a name prefix).
_LEGACY_NAMES: Final = frozenset({"summary.json", "discrepancies.csv", "snapshot"})
_LEGACY_SNAPSHOT: Final = frozenset({"manifest.json", "logs.parquet"})


def _ours_without_marker(directory: Path) -> bool:
    """True for a report or snapshot directory an earlier version wrote (no marker yet)."""
    names = {p.name for p in directory.iterdir()}
    if names <= _LEGACY_SNAPSHOT and "manifest.json" in names:
        return True
    if not names or not all(
        n in _LEGACY_NAMES or (n.startswith("reconciliation-") and n.endswith(".xlsx"))
        for n in names
    ):
        return False
    snap = directory / "snapshot"
    if snap.exists():
        return snap.is_dir() and {p.name for p in snap.iterdir()} <= _LEGACY_SNAPSHOT | {MARKER}
    return True


def check_replaceable(target: Path, flag: str = "--out") -> None:
    """Raise InputError (exit 2) unless writing to `target` can only replace our own output."""
    try:
        if target.is_symlink() and not target.exists():
            raise InputError("is a broken symbolic link", file=target, field=flag)
        if not target.exists():
            return
        if not target.is_dir():
            raise InputError(
                "is a file, not a directory: give a new or empty directory", file=target, field=flag
            )
        if (target / MARKER).is_file() or _ours_without_marker(target):
            return
        if any(target.iterdir()):
            raise InputError(
                "is a directory this tool did not write and it is not empty; it would be "
                "replaced with everything in it: give a new or empty directory",
                file=target,
                field=flag,
            )
    except OSError as exc:
        raise InputError(
            f"cannot be read: {exc.strerror or exc}", file=target, field=flag
        ) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _Held:
    """Signals held while a directory is being made or swapped in (see `stop`)."""

    depth = 0
    pending: BaseException | None = None


def stop(exc: BaseException) -> None:
    """Raise `exc` (a signal handler's Terminated or KeyboardInterrupt) now, or, while a
    staging directory is being made or swapped in, as soon as that step is done whole.

    Blocking the signal itself would not do: the process's other threads (Arrow's pools)
    would take it, and Python runs the handler in the main thread all the same."""
    if _Held.depth:
        _Held.pending = _Held.pending or exc
        return
    raise exc


def _hold_signals() -> None:
    _Held.depth += 1


def _release_signals() -> None:
    _Held.depth -= 1
    if not _Held.depth and _Held.pending is not None:
        exc, _Held.pending = _Held.pending, None
        raise exc


@contextmanager
def atomic_directory(target: Path, flag: str = "--out") -> Iterator[Path]:
    """Yield an empty staging directory beside `target`; on success it becomes `target`.

    The staging directory sits in the same parent so the final step is a rename. If the body
    raises, the staging directory is removed and any earlier `target` is left as it was.
    `target` must pass `check_replaceable`; the result carries the marker.
    """
    check_replaceable(target, flag)
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    # SIGTERM or Ctrl-C between mkdtemp's mkdir and the `try` below would leave the staging
    # directory behind: they are held until the `try` can remove it
    _hold_signals()
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    except BaseException:
        _release_signals()
        raise
    try:
        _release_signals()  # a signal that came meanwhile is raised here
        # mkdtemp makes it 0700; a report is as readable as any file the user writes
        staging.chmod(0o777 & ~_umask())
        (staging / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
        yield staging
        check_replaceable(target, flag)  # again: something may have appeared meanwhile
        _hold_signals()  # the swap below is done whole or not at all
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        _swap_in(staging, target)
    finally:
        _release_signals()  # a signal that came during the swap is raised here


def _swap_in(staging: Path, target: Path) -> None:
    """Put the finished `staging` in the place of `target`, the earlier one removed."""
    old: Path | None = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        if old is not None:
            old.rename(target)  # put the earlier report back
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a single file by rename, so readers never see half of it; flushed to disk before
    the rename, so a crash leaves the earlier file or the new one, never an empty one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """`atomic_write_bytes` of `text` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))
