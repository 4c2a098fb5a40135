"""The default runner: the period's days priced and matched one by one, here or in a pool.

The stages' working memory follows the largest day, not the month: the stage code builds its
intermediate tables (parsed `other` fields, token columns, lookups, wording) for one day at a
time. With `workers` > 1 at most that many days are in flight, each in its own process.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import pandas as pd

from reconcile.core.period import Period
from reconcile.core.results import Ledger
from reconcile.engines.base import (
    PartResult,
    Staged,
    combine,
    consume_positions,
    has_request_ids,
    stage_partition,
    stage_whole,
)
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
        logs: pd.DataFrame,
        ledger: Ledger | None,
        invoice: Ledger | None,
        period: Period,
        rules: Rules,
        id_scheme: str = "stable",
    ) -> Staged:
        parts = partition(logs, ledger, period, id_scheme)
        req = has_request_ids(logs)
        workers = self.workers

        def job(i: int) -> tuple[pd.DataFrame, Ledger | None]:
            part_ledger = None
            if ledger is not None and not parts.ledger_whole:
                part_ledger = parts.ledger(ledger, i)
            return logs.iloc[parts.logs[i]].reset_index(drop=True), part_ledger

        results: list[PartResult] = []
        if workers <= 1:
            for i in range(len(parts)):
                part_logs, part_ledger = job(i)
                results.append(
                    stage_partition(part_logs, part_ledger, period, rules, req, id_scheme)
                )
        else:
            # spawn, not fork: a forked child of a process running Arrow's threads can hang
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                pending: deque[Future[PartResult]] = deque()
                for i in range(len(parts)):
                    # at most `workers` days pickled and in flight at once
                    if len(pending) >= workers:
                        results.append(pending.popleft().result())
                    pending.append(
                        pool.submit(stage_partition, *job(i), period, rules, req, id_scheme)
                    )
                results.extend(f.result() for f in pending)
        positions = [consume_positions(logs, parts.logs[i]) for i in range(len(parts))]
        return combine(
            results, positions, logs, ledger, invoice, period, rules, id_scheme, parts.ledger_whole
        )


@dataclass
class WholeRunner:
    """The period in one piece, in this process: the reference the partitioned runs equal."""

    name: str = "whole"

    def stage(
        self,
        logs: pd.DataFrame,
        ledger: Ledger | None,
        invoice: Ledger | None,
        period: Period,
        rules: Rules,
        id_scheme: str = "stable",
    ) -> Staged:
        return stage_whole(logs, ledger, invoice, period, rules, id_scheme)
