"""Fetch progress: the hook the fetcher calls, and the two renderers the CLI chooses between.

A terminal gets a live rich progress bar; anything else (CI logs, a pipe) gets a plain line
every few seconds, so logs stay readable and nothing is redrawn.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TextIO


@dataclass(frozen=True)
class FetchProgress:
    """Cumulative counts for the whole run (all keys). `windows_total` grows as windows split."""

    windows_total: int = 0
    windows_done: int = 0
    pages: int = 0  # requests answered with a page (retries not included)
    logs: int = 0  # distinct logs in the windows done (what the fetch will return, all types)
    retries: int = 0
    keys_total: int = 0
    keys_done: int = 0

    def line(self) -> str:
        return (
            f"fetch: {self.windows_done}/{self.windows_total} windows, "
            f"{self.keys_done}/{self.keys_total} keys, {self.pages} pages, "
            f"{self.logs} logs, {self.retries} retries"
        )


class ProgressHook(Protocol):
    """Called by the fetcher after every page and every finished window."""

    def __call__(self, progress: FetchProgress) -> None: ...


class PlainProgress:
    """One line every `interval` seconds (and a last one on close): for CI and pipes."""

    def __init__(
        self, stream: TextIO, interval: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream = stream
        self._interval = interval
        self._clock = clock
        self._last_write = clock()
        self._last: FetchProgress | None = None
        self._written: FetchProgress | None = None

    def __call__(self, progress: FetchProgress) -> None:
        self._last = progress
        now = self._clock()
        if now - self._last_write >= self._interval:
            self._write(progress)
            self._last_write = now

    def close(self) -> None:
        if self._last is not None and self._last != self._written:
            self._write(self._last)

    def _write(self, progress: FetchProgress) -> None:
        self._stream.write(progress.line() + "\n")
        self._stream.flush()
        self._written = progress


class RichProgress:
    """A live bar over windows, with pages, logs and retries alongside: for terminals."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("fetching logs"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("windows · {task.fields[pages]} pages · {task.fields[logs]} logs"),
            TextColumn("{task.fields[retries]}"),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=False,
        )
        self._task = self._progress.add_task("fetch", total=None, pages=0, logs=0, retries="")
        self._progress.start()

    def __call__(self, progress: FetchProgress) -> None:
        self._progress.update(
            self._task,
            total=max(progress.windows_total, 1),
            completed=progress.windows_done,
            pages=progress.pages,
            logs=progress.logs,
            retries=f"· {progress.retries} retries" if progress.retries else "",
        )

    def close(self) -> None:
        self._progress.stop()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


@contextmanager
def progress_for(stream: TextIO, *, interval: float = 10.0) -> Iterator[ProgressHook]:
    """The right renderer for `stream`: a rich bar on a terminal, plain lines otherwise."""
    renderer: RichProgress | PlainProgress = (
        RichProgress(stream) if _is_terminal(stream) else PlainProgress(stream, interval)
    )
    try:
        yield renderer
    finally:
        renderer.close()
