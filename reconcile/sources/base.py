"""The seam every log source plugs into, as httpx's transports do for requests.

A source reads one period of one gateway's logs and proves the read complete, or raises
GatewayError (exit 3) / InputError (exit 2). What it returns is the same FetchResult whatever
it read from, so the snapshot, pricing, matching and reports never know the source.
"""

from __future__ import annotations

from typing import Protocol

from reconcile.core.period import Period
from reconcile.core.results import FetchResult
from reconcile.sources.progress import ProgressHook


class LogSource(Protocol):
    """One way to read a gateway's logs: an HTTP log API or the gateway's own database."""

    #: "token" | "self" | "admin" | "database": recorded in the snapshot as FetchResult.source.
    name: str

    def fetch(self, period: Period, progress: ProgressHook | None = None) -> FetchResult:
        """Every log of `period` (consume, refund, topup, error), each once, proven complete."""
        ...
