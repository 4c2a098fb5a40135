"""The Spark runner: the same day partitions, priced and matched by Spark executors.

The logs go to Spark as Parquet (written once to `scratch`, which on a cluster must be storage
every executor reads: HDFS, S3, NFS), each row tagged with its day and its position in the
period's logs. The ledger's rows are routed to days on the driver (a key-only lookup, as the
local runner does) and shipped per day. `cogroup(...).applyInPandas` then hands each executor
one day's logs and ledger rows as pandas frames, and runs the very stage code the local runner
runs (`stage_partition`); the day's result comes back pickled and the driver combines the days
exactly as the local runner does, so both runners give the same report.

Spark is imported only when this runner is chosen: `pyspark` is large and most runs never
need it.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reconcile.core.period import Period
from reconcile.core.results import Ledger
from reconcile.core.schema import CONSUME, LOG_COLUMNS, LOG_DTYPES
from reconcile.engines.base import (
    PartResult,
    Staged,
    combine,
    has_request_ids,
    stage_partition,
)
from reconcile.engines.partition import partition
from reconcile.errors import InputError
from reconcile.pricing.rules import Rules

_RESULT_SCHEMA = "part long, payload binary"


@dataclass
class SparkRunner:
    """Day partitions on Spark; `master` None takes spark.master from spark-submit's config."""

    master: str | None = None
    scratch: Path | None = None
    name: str = "spark"

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
        part_of = np.zeros(len(logs), dtype=np.int64)
        for i, rows in enumerate(parts.logs):
            part_of[rows] = i
        ledgers = [
            (i, pickle.dumps(parts.ledger(ledger, i)))
            for i in range(len(parts))
            if ledger is not None
            and not parts.ledger_whole
            and (len(parts.rows[i]) or len(parts.unreadable[i]))
        ]
        with _scratch(self.scratch) as where, self._session() as spark:
            path = where / "logs.parquet"
            _write_logs(logs, part_of, path)
            days = spark.read.parquet(str(path))
            books = spark.createDataFrame(ledgers or [], "part long, ledger binary")
            out = (
                days.groupBy("part")
                .cogroup(books.groupBy("part"))
                .applyInPandas(
                    _day_job(period, rules, has_request_ids(logs), id_scheme), schema=_RESULT_SCHEMA
                )
                .collect()
            )
        done: dict[int, tuple[PartResult, np.ndarray[Any, np.dtype[np.int64]]]] = {
            int(row["part"]): pickle.loads(bytes(row["payload"]))  # noqa: S301 - our own bytes
            for row in out
        }
        results: list[PartResult] = []
        positions = []
        for i in range(len(parts)):
            if i in done:
                result, pos = done[i]
            else:  # a day with neither logs nor ledger rows
                result = stage_partition(logs.iloc[0:0], None, period, rules)
                pos = np.zeros(0, dtype=np.int64)
            results.append(result)
            positions.append(pos)
        return combine(
            results, positions, logs, ledger, invoice, period, rules, id_scheme, parts.ledger_whole
        )

    @contextmanager
    def _session(self) -> Iterator[Any]:
        """The active Spark session if there is one (spark-submit, tests), else a new one."""
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise InputError(
                "--engine spark needs pyspark installed (pip install pyspark)", field="--engine"
            ) from None
        active = SparkSession.getActiveSession()
        if active is not None:
            yield active
            return
        builder = SparkSession.builder.appName("reconcile")
        if self.master:
            builder = builder.master(self.master)
        # local workers run this interpreter (and its packages) unless told otherwise
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        spark = builder.getOrCreate()
        try:
            yield spark
        finally:
            spark.stop()


@contextmanager
def _scratch(where: Path | None) -> Iterator[Path]:
    if where is not None:
        where.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reconcile-spark-", dir=where) as tmp:
        yield Path(tmp)


def _write_logs(logs: pd.DataFrame, part_of: np.ndarray[Any, Any], path: Path) -> None:
    """The logs, their day and their position in the period's logs, as one Parquet file."""
    frame = logs[[*LOG_COLUMNS, *(["row_key"] if "row_key" in logs else [])]].copy()
    frame["part"] = part_of
    frame["pos"] = np.arange(len(logs), dtype=np.int64)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, row_group_size=1 << 18)


def _day_job(period: Period, rules: Rules, request_ids: bool, id_scheme: str) -> Any:
    """The function each executor runs on one day: the local runner's stage code."""

    def job(key: tuple[Any, ...], days: pd.DataFrame, books: pd.DataFrame) -> pd.DataFrame:
        part = int(key[0])
        days = days.sort_values("pos", kind="stable").reset_index(drop=True)
        pos = days["pos"].to_numpy(dtype=np.int64)
        logs = days[LOG_COLUMNS].astype(LOG_DTYPES)
        if "row_key" in days:
            logs["row_key"] = days["row_key"].astype("string")
        ledger = pickle.loads(bytes(books["ledger"].iloc[0])) if len(books) else None  # noqa: S301
        result = stage_partition(logs, ledger, period, rules, request_ids, id_scheme)
        consume = pos[logs["type"].to_numpy(dtype=np.int64) == CONSUME]
        payload = pickle.dumps((result, consume))
        return pd.DataFrame({"part": [part], "payload": [payload]})

    return job
