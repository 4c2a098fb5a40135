"""The Spark runner: the same day partitions, priced and matched by Spark executors.

The logs go to Spark as Parquet, one file per day: the snapshot's own day files when the run
reads a snapshot stored that way (each log's day computed from its time), else written a day
at a time to `scratch`, each row with its position in its day. The ledger's rows are routed to
days on the driver (from the logs' ids and request ids only, as the local runner does) and
written to `scratch` a day at a time, one file per day; Spark carries only each file's path.
(The rows themselves, shipped in a DataFrame made of a Python list, travel inside the tasks:
the driver's JVM serialises each task whole, and at 10M rows that ran its 2 GB heap out and
killed Spark's scheduler thread, so the run hung before any task started.) On a cluster the
snapshot and `scratch` must be storage every executor reads (HDFS, S3, NFS).
`cogroup(...).applyInPandas` then hands each executor one day's logs and its ledger file's
path, and runs the very stage code the local runner runs (`stage_partition`); a day with
ledger rows and no logs is a group too. The day's result comes back pickled and the driver
combines the days exactly as the local runner does, so both runners give the same report.

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

from reconcile.core.identity import UniqueIds, renumbered
from reconcile.core.logstore import IntArray, LogStore, day_edges
from reconcile.core.period import Period
from reconcile.core.results import Ledger
from reconcile.core.schema import LOG_COLUMNS, LOG_DTYPES, empty_logs
from reconcile.engines.base import PartResult, Staged, combine, stage_partition
from reconcile.engines.partition import Partitions, partition
from reconcile.errors import InputError
from reconcile.pricing.rules import Rules

_RESULT_SCHEMA = "part long, payload binary"
#: The order of the logs in a snapshot's files (sources/snapshot.py); row_key is unique.
SNAPSHOT_ORDER = ["created_at", "id", "key_ref", "row_key"]


@dataclass
class SparkRunner:
    """Day partitions on Spark; `master` None takes spark.master from spark-submit's config."""

    master: str | None = None
    scratch: Path | None = None
    name: str = "spark"

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
        raw, offsets = store, None
        if isinstance(store, UniqueIds):  # executors number their day's ids themselves
            raw = store.inner
            offsets = None if store.stable else [int(o) for o in store.offsets]
        job = _day_job(period, rules, parts.has_requests, id_scheme, offsets)
        files = snapshot_files(raw)
        with _scratch(self.scratch) as where, self._session() as spark:
            ledgers = _write_ledgers(ledger, parts, store.days, where / "ledger")
            if files is None:
                _write_days(raw, where / "logs")
                days = spark.read.parquet(str(where / "logs"))
            else:  # the snapshot's own day files: each log's day from its time, as the store's
                days = spark.read.parquet(*files).withColumn("part", _part_of(day_edges(period)))
            books = spark.createDataFrame(ledgers, "part long, ledger string")
            out = (
                days.groupBy("part")
                .cogroup(books.groupBy("part"))
                .applyInPandas(job, schema=_RESULT_SCHEMA)
                .collect()
            )
        done: dict[int, PartResult] = {
            int(row["part"]): pickle.loads(bytes(row["payload"]))  # noqa: S301 - our own bytes
            for row in out
        }
        empty = stage_partition(empty_logs(), None, period, rules)  # a day with no logs
        results = [done.get(i, empty) for i in range(store.days)]
        return combine(results, store, ledger, invoice, rules, id_scheme, parts)

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


def snapshot_files(store: LogStore) -> list[str] | None:
    """The store's Parquet file of each day, when it is a snapshot stored one file a day (then
    executors read them where they are; the snapshot was verified when it was opened)."""
    directory, files = getattr(store, "directory", None), getattr(store, "files", None)
    if directory is None or files is None or len(files) != store.days:
        return None
    paths = [Path(directory) / name for name, _ in files]
    return [str(p) for p in paths if p.is_file()]


def _part_of(edges: IntArray) -> Any:
    """Spark's column of each log's day: how many of the period's midnights it is at or after
    (core.logstore.part_of_time, times outside the period at the nearest end)."""
    from pyspark.sql import functions as F

    created = F.col("created_at")
    midnights = [(created >= int(e)).cast("long") for e in edges[1:-1]]
    return sum(midnights[1:], midnights[0]) if midnights else F.lit(0).cast("long")


def _write_days(store: LogStore, where: Path) -> None:
    """Each day's logs as its own Parquet file, `where/part=<day>/`, with each log's position
    in its day (Spark hands a group's rows over in no set order). One day in memory at a time.
    """
    for i in range(store.days):
        frame = store.day(i)
        frame = frame[[*LOG_COLUMNS, *(["row_key"] if "row_key" in frame else [])]]
        frame = frame.assign(pos=np.arange(len(frame), dtype=np.int64))
        table = pa.Table.from_pandas(frame, preserve_index=False)
        (where / f"part={i}").mkdir(parents=True)
        pq.write_table(table, where / f"part={i}" / "logs.parquet", row_group_size=1 << 18)


def _write_ledgers(
    ledger: Ledger | None, parts: Partitions, days: int, where: Path
) -> list[tuple[int, str]]:
    """(day, path) of each day's routed ledger rows, pickled to `where/part=<day>.pickle` one
    day at a time (the driver holds the ledger once, not a second pickled copy of it)."""
    if ledger is None:
        return []
    where.mkdir(parents=True)
    written = []
    for i in range(days):
        if parts.has_rows(i):
            path = where / f"part={i}.pickle"
            with path.open("wb") as f:
                pickle.dump(parts.ledger(ledger, i), f, protocol=pickle.HIGHEST_PROTOCOL)
            written.append((i, str(path)))
    return written


def _read_ledger(books: pd.DataFrame) -> Ledger | None:
    """The day's ledger rows, from the file `_write_ledgers` wrote (our own bytes)."""
    if not len(books):
        return None
    with open(books["ledger"].iloc[0], "rb") as f:
        ledger: Ledger = pickle.load(f)  # noqa: S301 - written by this run's driver
    return ledger


def _day_job(
    period: Period, rules: Rules, request_ids: bool, id_scheme: str, offsets: list[int] | None
) -> Any:
    """The function each executor runs on one day: the local runner's stage code.

    `offsets`: where each day's ids start when the gateway's ids are renumbered
    (core/identity.py), so an executor numbers its day as the whole month would.
    """

    def job(key: tuple[Any, ...], days: pd.DataFrame, books: pd.DataFrame) -> pd.DataFrame:
        part = int(key[0])
        # rows come in no set order: back to the day's (a snapshot's files are in its order)
        order = ["pos"] if "pos" in days else SNAPSHOT_ORDER
        days = days.sort_values(order, kind="stable").reset_index(drop=True)
        logs = days[LOG_COLUMNS].astype(LOG_DTYPES)
        if "row_key" in days:
            logs["row_key"] = days["row_key"].astype("string")
        if offsets is not None:
            logs = renumbered(logs, offsets[part] + 1)
        result = stage_partition(logs, _read_ledger(books), period, rules, request_ids, id_scheme)
        return pd.DataFrame({"part": [part], "payload": [pickle.dumps(result)]})

    return job
