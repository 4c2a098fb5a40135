"""Day partitions give the verdict the whole month gives: same summary.json, same findings.

Partitioned locally, in a process pool, or on Spark in local mode (two cores, loopback).
"""

from __future__ import annotations

import gc
import itertools
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from conftest import Gateway, run_cli
from match_helpers import fixture_rules, make_logs, period, write
from pydantic import SecretStr

from reconcile import pipeline
from reconcile.books.invoice import load_invoice
from reconcile.books.ledger import load_ledger
from reconcile.core.findings import finalize
from reconcile.core.identity import UniqueIds, renumbered
from reconcile.core.logstore import FrameStore, day_edges
from reconcile.core.period import Period, parse_period
from reconcile.demo import run as demo
from reconcile.engines import LocalRunner, WholeRunner
from reconcile.engines.base import Runner, month, stage_partition
from reconcile.engines.partition import partition
from reconcile.engines.spark import SNAPSHOT_ORDER, SparkRunner, snapshot_files
from reconcile.match.ledger import id_warnings
from reconcile.pricing.rules import load_rules
from reconcile.settings import Settings
from reconcile.sources.snapshot import read_snapshot, write_snapshot


@pytest.fixture(scope="module")
def demo_snapshot(demo_gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo month fetched once from the built-in gateway and stored as a snapshot."""
    settings = Settings(
        base_url=demo_gateway.url,
        api_keys=SecretStr(",".join(demo_gateway.keys)),
        timezone=demo.TIMEZONE,
        rules=demo.FILES.rules,
    )
    out = tmp_path_factory.mktemp("fetched")
    return pipeline.fetch_to(settings, _demo_period(), out).directory


def _demo_period() -> Period:
    return parse_period(demo.PERIOD, None, None, demo.TIMEZONE)


def _request(snapshot: Path | None) -> pipeline.RunRequest:
    return pipeline.RunRequest(
        period=_demo_period(),
        rules=demo.FILES.rules,
        ledger=demo.FILES.ledger,
        from_snapshot=snapshot,
    )


def run_report(snapshot: Path, runner: Runner, out: Path) -> dict[str, bytes]:
    settings = Settings(timezone=demo.TIMEZONE, rules=demo.FILES.rules)
    result = pipeline.compute(settings, _request(snapshot), runner=runner)
    written = pipeline.write_report(result, out)
    return {role: written[role].read_bytes() for role in ("summary", "discrepancies")}


def test_demo_partitioned_by_day_writes_the_same_summary_as_the_whole_month(
    demo_snapshot: Path, tmp_path: Path
) -> None:
    whole = run_report(demo_snapshot, WholeRunner(), tmp_path / "whole")
    days = run_report(demo_snapshot, LocalRunner(workers=1), tmp_path / "days")
    pool = run_report(demo_snapshot, LocalRunner(workers=2), tmp_path / "pool")
    assert b'"missing_in_ledger"' in whole["summary"]  # the demo plants findings to compare
    assert days == whole
    assert pool == whole


def test_period_days_follow_the_period_time_zone() -> None:
    edges = day_edges(period())  # October 2026 in Asia/Shanghai: 31 local midnights
    assert len(edges) == 32
    assert all(int(b - a) == 86400 for a, b in itertools.pairwise(edges))
    assert int(edges[0]) == period().start_ts


LEDGER = """log_id,request_id,created_at,type,model_name,quota
1,,2026-10-02T00:00:20+08:00,consume,gpt-4o,100
,req-2,2026-10-01T23:59:59+08:00,consume,gpt-4o,250
1,,2026-10-09T12:00:00+08:00,consume,gpt-4o,100
77,,2026-10-03T08:00:00+08:00,consume,gpt-4o,40
77,,2026-10-20T08:00:00+08:00,consume,gpt-4o,40
,req-gone,2026-10-04T08:00:00+08:00,consume,gpt-4o,9
,req-gone,2026-10-21T08:00:00+08:00,consume,gpt-4o,9
3,,2026-11-01T00:00:01+08:00,consume,gpt-4o,70
3,,2026-10-15T00:00:01+08:00,consume,gpt-4o,70
"""


def _ledger_month_logs() -> pd.DataFrame:
    """The logs LEDGER books: across midnight, by request id, on the last second, mid-month."""
    return make_logs(
        [
            {"id": 1, "created_at": "2026-10-01 23:59:50", "quota": 100, "request_id": "req-1"},
            {"id": 2, "created_at": "2026-10-02 00:00:03", "quota": 200, "request_id": "req-2"},
            {"id": 3, "created_at": "2026-10-31 23:59:59", "quota": 70, "request_id": "req-3"},
            {"id": 4, "created_at": "2026-10-12 09:00:00", "quota": 5, "request_id": "req-4"},
        ]
    )


def test_ledger_rows_meet_their_log_across_midnight_and_are_judged_as_in_one_piece(
    tmp_path: Path,
) -> None:
    # log 1 is logged at 23:59:50 on the 1st, booked on the 2nd (clock skew), and booked
    # again on the 9th; log 2 is claimed by request id from the day before; log id 77 and
    # request req-gone name no log, each twice on different days; log 3's first row is
    # dated after the period, its second inside it.
    logs = _ledger_month_logs()
    rules = fixture_rules()
    ledger = load_ledger(write(tmp_path, "ledger.csv", LEDGER), rules, period().tz)
    parts = partition(FrameStore(logs, period()), ledger)
    assert sorted(int(r) for r in parts.rows[0]) == [0, 2]  # log 1's rows go to the 1st
    assert sorted(int(r) for r in parts.rows[1]) == [1]  # req-2 goes to log 2's day

    whole = WholeRunner().stage(FrameStore(logs, period()), ledger, None, rules)
    days = LocalRunner(workers=1).stage(FrameStore(logs, period()), ledger, None, rules)
    a, b = finalize(whole.frames, rules), finalize(days.frames, rules)
    pd.testing.assert_frame_equal(a, b)
    cats = a.groupby("category", observed=True).size().to_dict()
    assert cats == {
        "amount_mismatch": 1,
        "duplicate_ledger": 4,
        "missing_in_ledger": 1,
        "missing_in_logs": 2,
        "out_of_period": 1,
        "unpriced_model": 4,  # the logs name no model: not what this test is about
    }
    assert days.aggregates == whole.aggregates


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One Spark session for the whole run, bound to loopback: starting one takes seconds."""
    from pyspark.sql import SparkSession

    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["PYSPARK_PYTHON"] = sys.executable  # the workers import this venv's packages
    session = (
        SparkSession.builder.master("local[2]")
        .appName("reconcile-tests")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield session
    session.stop()


def test_spark_local_mode_writes_the_local_runners_summary(
    spark: Any, demo_snapshot: Path, tmp_path: Path
) -> None:
    local = run_report(demo_snapshot, LocalRunner(workers=1), tmp_path / "local")
    on_spark = run_report(demo_snapshot, SparkRunner(scratch=tmp_path / "scratch"), tmp_path / "s")
    assert b'"missing_in_ledger"' in local["summary"]
    assert on_spark == local


def test_spark_judges_ledger_rows_of_days_without_logs_as_the_local_runner(
    spark: Any, tmp_path: Path
) -> None:
    # executors read each day's ledger rows from the scratch directory: rows naming log 77
    # and req-gone are routed to the 3rd and 4th, days with no logs; of the unreadable rows,
    # one claims log 4 (the 12th) and one claims no log, so it is routed to no day at all
    text = LEDGER + "4,,2026-10-12T09:00:00+08:00,consume,gpt-4o,oops\n"
    text += "99,,2026-10-25T09:00:00+08:00,consume,gpt-4o,oops\n"
    logs = _ledger_month_logs()
    rules = fixture_rules()
    ledger = load_ledger(write(tmp_path, "ledger.csv", text), rules, period().tz)
    parts = partition(FrameStore(logs, period()), ledger)
    assert [len(parts.rows[i]) for i in (2, 3)] == [2, 2]  # the 3rd and 4th: no logs
    assert sum(len(u) for u in parts.unreadable) == 1 < len(ledger.unreadable)
    local = LocalRunner(workers=1).stage(FrameStore(logs, period()), ledger, None, rules)
    scratch = tmp_path / "scratch"
    on_spark = SparkRunner(scratch=scratch).stage(FrameStore(logs, period()), ledger, None, rules)
    a, b = finalize(local.frames, rules), finalize(on_spark.frames, rules)
    pd.testing.assert_frame_equal(b, a)
    cats = a.groupby("category", observed=True).size().to_dict()
    assert cats["missing_in_logs"] == 2  # log 77 and req-gone, each judged once
    assert cats["duplicate_ledger"] == 4
    assert on_spark.aggregates == local.aggregates
    assert list(scratch.iterdir()) == []  # the run's scratch files are gone


NO_IDS = """created_at,type,model_name,quota
2026-10-02T00:00:20+08:00,consume,gpt-4o,100
2026-10-02T00:00:04+08:00,consume,gpt-4o,200
2026-10-12T09:00:00+08:00,consume,gpt-4o,6
"""


def test_a_ledger_without_ids_is_paired_by_content_across_midnight_as_in_one_piece(
    tmp_path: Path,
) -> None:
    # rows without ids pair with logs by content and time, which may lie on another day:
    # the ledger is then matched in one piece (the pricing still by day)
    logs = make_logs(
        [
            {"id": 1, "created_at": "2026-10-01 23:59:50", "quota": 100, "model_name": "gpt-4o"},
            {"id": 2, "created_at": "2026-10-02 00:00:03", "quota": 200, "model_name": "gpt-4o"},
            {"id": 4, "created_at": "2026-10-12 09:00:00", "quota": 5, "model_name": "gpt-4o"},
        ]
    )
    rules = fixture_rules()
    ledger = load_ledger(write(tmp_path, "ledger.csv", NO_IDS), rules, period().tz)
    assert partition(FrameStore(logs, period()), ledger).ledger_whole
    whole = WholeRunner().stage(FrameStore(logs, period()), ledger, None, rules)
    days = LocalRunner(workers=1).stage(FrameStore(logs, period()), ledger, None, rules)
    a, b = finalize(whole.frames, rules), finalize(days.frames, rules)
    pd.testing.assert_frame_equal(a, b)


def test_an_unknown_engine_is_exit_2_naming_the_flag() -> None:
    ran = run_cli("run", "--period", "2026-10", "--engine", "dask", "--rules", demo.FILES.rules)
    assert ran.code == 2
    assert "--engine" in ran.stderr


def test_ids_numbered_day_by_day_are_the_months_numbering() -> None:
    # a current new-api numbers logs by position: ids repeat across days, and the frame is
    # not in time order; two logs share a second and differ only in content
    logs = make_logs(
        [
            {"id": 1, "created_at": "2026-10-03 08:00:00", "quota": 5},
            {"id": 2, "created_at": "2026-10-01 00:00:01", "quota": 7},
            {"id": 1, "created_at": "2026-10-02 12:00:00", "quota": 9},
            {"id": 2, "created_at": "2026-10-02 12:00:00", "quota": 8},
            {"id": 3, "created_at": "2026-10-31 23:59:59", "quota": 1},
            {"id": 1, "created_at": "2026-10-01 23:59:59", "quota": 3},
        ]
    )
    whole = FrameStore(renumbered(logs), period())
    days = UniqueIds(FrameStore(logs, period()), "position")
    assert sorted(month(days)["id"].tolist()) == [1, 2, 3, 4, 5, 6]
    for i in range(days.days):
        pd.testing.assert_frame_equal(days.day(i), whole.day(i))
    pd.testing.assert_frame_equal(
        days.columns(["id", "created_at"]), whole.columns(["id", "created_at"])
    )


def test_demo_with_ids_by_position_gives_every_runner_the_same_summary(
    spark: Any, demo_snapshot: Path, tmp_path: Path
) -> None:
    # the same month as a current new-api shows it (ids by position): the stages renumber
    # the logs day by day, the ledger's log_ids are not used, rows pair by content
    fetched = read_snapshot(demo_snapshot)
    snap = write_snapshot(replace(fetched, id_scheme="position"), tmp_path / "snap")
    whole = run_report(snap, WholeRunner(), tmp_path / "whole")
    days = run_report(snap, LocalRunner(workers=1), tmp_path / "days")
    on_spark = run_report(snap, SparkRunner(scratch=tmp_path / "scratch"), tmp_path / "spark")
    assert b"numbered by position" in whole["summary"]  # the ledger's log_ids were not used
    assert days == whole
    assert on_spark == whole


INVOICE = """date,model_name,token_name,quota
2026-10-01,gpt-4o,ci,100
2026-10-02,gpt-4o,ci,150
2026-10-12,gpt-4o,ci,5
2026-11-01,gpt-4o,ci,9
"""


def test_an_invoice_is_matched_on_the_months_sums_by_every_runner(tmp_path: Path) -> None:
    # the invoice bills per model, day and token: judged once over narrow columns of the
    # whole month, whichever runner prices the days
    logs = make_logs(
        [
            {"id": 1, "created_at": "2026-10-01 23:59:50", "quota": 100, "token_name": "ci"},
            {"id": 2, "created_at": "2026-10-02 00:00:03", "quota": 200, "token_name": "ci"},
            {"id": 4, "created_at": "2026-10-12 09:00:00", "quota": 5, "token_name": "ci"},
        ]
    )
    logs["model_name"] = "gpt-4o"
    rules = fixture_rules()
    invoice = load_invoice(write(tmp_path, "invoice.csv", INVOICE), rules, period().tz)
    whole = WholeRunner().stage(FrameStore(logs, period()), None, invoice, rules)
    days = LocalRunner(workers=1).stage(FrameStore(logs, period()), None, invoice, rules)
    a, b = finalize(whole.frames, rules), finalize(days.frames, rules)
    pd.testing.assert_frame_equal(a, b)
    cats = a.groupby("category", observed=True).size().to_dict()
    assert cats["amount_mismatch"] == 1  # the 2nd: 150 billed, 200 logged
    assert cats["out_of_period"] == 1


class DayFiles(FrameStore):
    """Logs stored as a snapshot stores them: one Parquet file a day, in the snapshot's order."""

    def __init__(self, logs: pd.DataFrame, period: Period, directory: Path) -> None:
        super().__init__(logs.sort_values(SNAPSHOT_ORDER, kind="stable"), period)
        self.directory = directory
        self.files = [(f"day-{i:02d}.parquet", "") for i in range(self.days)]
        for i, (name, _) in enumerate(self.files):
            self.day(i).to_parquet(directory / name, index=False)


def test_spark_reads_a_snapshots_day_files_where_they_are(
    spark: Any, demo_snapshot: Path, tmp_path: Path
) -> None:
    # executors read each day's file themselves and find each log's day from its time
    fetched = read_snapshot(demo_snapshot)
    rules = load_rules(demo.FILES.rules)
    ledger = load_ledger(demo.FILES.ledger, rules, fetched.period.tz)
    stored = DayFiles(fetched.logs, fetched.period, tmp_path)
    assert snapshot_files(stored) is not None
    local = LocalRunner().stage(FrameStore(fetched.logs, fetched.period), ledger, None, rules)
    on_spark = SparkRunner(scratch=tmp_path / "scratch").stage(stored, ledger, None, rules)
    pd.testing.assert_frame_equal(finalize(on_spark.frames, rules), finalize(local.frames, rules))
    assert on_spark.aggregates == local.aggregates


def test_every_runner_says_whether_the_logs_carry_request_ids(tmp_path: Path) -> None:
    # the ledger's id warnings ("the gateway's logs carry no request_id") rest on it
    rules = fixture_rules()
    ledger = load_ledger(write(tmp_path, "ledger.csv", LEDGER), rules, period().tz)
    rows = [
        {"id": 1, "created_at": "2026-10-01 23:59:50", "quota": 100},
        {"id": 2, "created_at": "2026-10-12 09:00:00", "quota": 5, "request_id": "req-2"},
    ]
    for logs, carried in ((make_logs(rows), True), (make_logs(rows[:1]), False)):
        for runner in (WholeRunner(), LocalRunner(workers=1)):
            staged = runner.stage(FrameStore(logs, period()), ledger, None, rules)
            assert staged.has_requests is carried, (runner.name, carried)
        warnings = id_warnings(ledger, "stable", carried)
        assert any("carry no request_id" in w for w in warnings) is not carried


def test_a_days_result_keeps_none_of_the_days_priced_rows() -> None:
    """The local runner holds every day's result until the month is combined: a result whose
    emptied table still kept the day's priced rows alive made a month's run grow with the
    month (1.8 GB at 10M logs), not with the largest day."""
    logs = make_logs([{"id": i, "model_name": f"model-{i % 7}"} for i in range(20_000)])
    result = stage_partition(logs, None, period(), fixture_rules())
    assert result.pricing.priced.empty
    gc.collect()
    with_table = pa.total_allocated_bytes()
    result = replace(result, pricing=replace(result.pricing, priced=pd.DataFrame()))
    gc.collect()
    held = with_table - pa.total_allocated_bytes()
    # the day's priced rows: ~2.5 MB of Arrow strings (rule, ratios, status, reason)
    assert held < 20_000, f"the emptied table held {held:,} bytes of the day's rows"
