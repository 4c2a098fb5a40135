"""The default runner: the period's days priced and matched one by one, in a pool of processes.

Peak memory follows the largest day, not the month: the stage code builds its intermediate
tables (parsed `other` fields, token columns, lookups, wording) for one day at a time, and at
most `workers` days are in flight, each in its own process, whose memory is returned to the
system when the day is done. `workers=1` runs the days in this process, one after another.
"""

from __future__ import annotations

import multiprocessing
import os
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

#: Below this many logs the days run in this process: starting a pool costs more than it saves.
POOL_FROM_LOGS = 200_000


def default_workers(logs: int) -> int:
    """Two processes for a large month (more days in flight would multiply peak memory)."""
    return 1 if logs < POOL_FROM_LOGS else max(1, min(2, os.cpu_count() or 1))


@dataclass
class LocalRunner:
    """Day partitions over a process pool (`workers` processes; 1: in this process).

    `workers` None chooses by the month's size (`default_workers`).
    """

    workers: int | None = None
    name: str = "local"

    def stage(
        self,
        logs: pd.DataFrame,
        ledger: Ledger | None,
        invoice: Ledger | None,
        period: Period,
        rules: Rules,
    ) -> Staged:
        parts = partition(logs, ledger, period)
        req = has_request_ids(logs)
        workers = self.workers if self.workers is not None else default_workers(len(logs))

        def job(i: int) -> tuple[pd.DataFrame, Ledger | None]:
            part_ledger = parts.ledger(ledger, i) if ledger is not None else None
            return logs.iloc[parts.logs[i]].reset_index(drop=True), part_ledger

        results: list[PartResult] = []
        if workers <= 1:
            for i in range(len(parts)):
                part_logs, part_ledger = job(i)
                results.append(stage_partition(part_logs, part_ledger, period, rules, req))
        else:
            # spawn, not fork: a forked child of a process running Arrow's threads can hang
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                pending: deque[Future[PartResult]] = deque()
                for i in range(len(parts)):
                    # at most `workers` days pickled and in flight at once
                    if len(pending) >= workers:
                        results.append(pending.popleft().result())
                    pending.append(pool.submit(stage_partition, *job(i), period, rules, req))
                results.extend(f.result() for f in pending)
        positions = [consume_positions(logs, parts.logs[i]) for i in range(len(parts))]
        return combine(results, positions, logs, ledger, invoice, period, rules)


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
    ) -> Staged:
        return stage_whole(logs, ledger, invoice, period, rules)
