"""How the command line ends when something outside the run stops it: SIGTERM, a reader
that closed the output pipe, an error nobody expected. The exit statuses are in clihelp.py."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import traceback
from pathlib import Path

from reconcile.core.atomic import stop

#: 128 + SIGPIPE: what a shell reports for a program stopped because its reader went away.
EXIT_PIPE = 141


def where(exc: BaseException) -> str:
    """` at reconcile/x.py:12`: the innermost frame of this package, without the message
    (which may quote data)."""
    here = Path(__file__).resolve().parent
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename)
        if path.is_relative_to(here):
            return f" at reconcile/{path.relative_to(here)}:{frame.lineno}"
    return ""


class Terminated(BaseException):
    """SIGTERM (a CI job cancelled, a container stopped): raised where the run is, so that
    half-written output is removed on the way out as it is for Ctrl-C. A BaseException, so
    that no `except Exception` on the way swallows it."""


def on_sigterm(signum: int, frame: object) -> None:
    stop(Terminated())


def on_sigint(signum: int, frame: object) -> None:
    stop(KeyboardInterrupt())


def stopped(exc: BaseException | None) -> BaseException | None:
    """The SIGTERM or Ctrl-C behind `exc`, if it was raised while one was being handled.

    A signal raised inside a writer (a zip member still open, a pool shutting down) can make
    the clean-up on the way out raise an error of its own; the run was still stopped by the
    signal, not by a defect, and must end as a stopped run does."""
    while exc is not None:
        if isinstance(exc, Terminated | KeyboardInterrupt):
            return exc
        exc = exc.__context__
    return None


def broken_pipe(exc: BaseException | None) -> bool:
    """True when `exc`, or an error it was raised while handling, is a write to a closed pipe."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
            return True
        exc = exc.__context__
    return False


def reader_gone() -> int:
    """`reconcile ... | head -1`: the reader has what it wanted. What is still buffered for
    stdout goes to /dev/null (not to a BrokenPipeError at exit); the status to exit with is
    141, never 1, which means findings."""
    with contextlib.suppress(OSError, ValueError):  # stdout may be no file at all
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_PIPE
