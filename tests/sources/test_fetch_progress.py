"""Progress rendering: a live bar on a terminal, periodic plain lines in CI and pipes."""

from __future__ import annotations

import io

from reconcile.sources.progress import FetchProgress, PlainProgress, RichProgress, progress_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_are_rate_limited_and_the_last_state_is_always_written() -> None:
    out, clock = io.StringIO(), FakeClock()
    hook = PlainProgress(out, interval=10, clock=clock)
    for second in range(25):
        clock.now = float(second)
        hook(FetchProgress(windows_total=25, windows_done=second + 1, pages=second, logs=100))
    hook.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "fetch: 11/25 windows, 0/0 keys, 10 pages, 100 logs, 0 retries",
        "fetch: 21/25 windows, 0/0 keys, 20 pages, 100 logs, 0 retries",
        "fetch: 25/25 windows, 0/0 keys, 24 pages, 100 logs, 0 retries",
    ]


def test_plain_progress_writes_nothing_when_nothing_happened() -> None:
    out = io.StringIO()
    with progress_for(out):
        pass
    assert out.getvalue() == ""


def test_the_renderer_follows_the_stream() -> None:
    with progress_for(io.StringIO()) as hook:
        assert isinstance(hook, PlainProgress)
    term = Terminal()
    with progress_for(term) as hook:
        assert isinstance(hook, RichProgress)
        hook(FetchProgress(windows_total=4, windows_done=4, pages=9, logs=812, keys_total=1))
    assert "812 logs" in term.getvalue()
