"""The default runner: the period's days priced and matched one by one, here or in a pool.

Memory follows the largest day, not the month: a day's logs are read from the store, priced
and matched against the ledger rows routed to that day, and dropped before the next day is
read; of the whole period only the logs' ids and request ids are held (to route the ledger).
With `workers` > 1 at most that many days are in flight, each in its own process.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import pandas as pd

from reconcile.core.logstore import LogStore
from reconcile.core.results import Ledger
from reconcile.engines.base import PartResult, Staged, combine, stage_partition, stage_whole
from reconcile.engines.partition import partition
from reconcile.pricing.rules import Rules


@dataclass
class LocalRunner:
    """Day partitions, in this process (`workers` 1) or over a pool of `workers` processes.

    One is the default. Measured on the 2-core machine (benchmarks/README.md, 1M logs), two
    pool workers made the stages 2x slower (each day pickled to and from a worker) and the
    process tree's peak larger than the whole month's in one piece, while the stages are a
    fifth of the run; the pool is for machines with cores to spare.
    """

    workers: int = 1
    name: str = "local"

    def stage(
        self,
        store: LogStore,
        ledger: Ledger | None,
        invoice: Ledger | None,
        rules: Rules,
        id_scheme: str = "stable",
    ) -> Staged:
        period = store.period
        parts = partition(store, ledger, id_scheme)
        req = parts.has_requests

        def day(i: int) -> tuple[pd.DataFrame, Ledger | None]:
            return store.day(i), (parts.ledger(ledger, i) if ledger is not None else None)

        results: list[PartResult] = []
        if self.workers <= 1:
            for i in range(store.days):
                logs, day_ledger = day(i)
                results.append(stage_partition(logs, day_ledger, period, rules, req, id_scheme))
                del logs, day_ledger
        else:
            # spawn, not fork: a forked child of a process running Arrow's threads can hang
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(self.workers, mp_context=context) as pool:
                pending: deque[Future[PartResult]] = deque()
                for i in range(store.days):
                    # at most `workers` days read and in flight at once
                    if len(pending) >= self.workers:
                        results.append(pending.popleft().result())
                    pending.append(
                        pool.submit(stage_partition, *day(i), period, rules, req, id_scheme)
                    )
                results.extend(f.result() for f in pending)
        return combine(results, store, ledger, invoice, rules, id_scheme, parts)


@dataclass
class WholeRunner:
    """The period in one piece, in this process: the reference the partitioned runs equal."""

    name: str = "whole"

    def stage(
        self,
        store: LogStore,
        ledger: Ledger | None,
        invoice: Ledger | None,
        rules: Rules,
        id_scheme: str = "stable",
    ) -> Staged:
        return stage_whole(store, ledger, invoice, rules, id_scheme)
