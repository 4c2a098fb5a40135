"""The report's sums add up day by day: the days' aggregates combined are the month's, exactly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import report_helpers
from conftest import Gateway
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from pydantic import SecretStr

from reconcile.core.aggregates import (
    LOG_COLUMNS_READ,
    NO_NAME,
    NO_PATH,
    NO_REASON,
    PRICED_COLUMNS_READ,
    LogAggregates,
    combine,
)
from reconcile.core.identity import with_unique_ids
from reconcile.core.logstore import FrameStore
from reconcile.core.period import Period, parse_period
from reconcile.core.results import RunResult
from reconcile.core.schema import CONSUME, ERROR, LOG_DTYPES, REFUND, TOPUP
from reconcile.demo import run as demo
from reconcile.pricing.rules import load_rules
from reconcile.pricing.stage import price_logs
from reconcile.report import tables
from reconcile.report.csvfile import write_discrepancies_csv
from reconcile.report.summary import build_summary, summary_json
from reconcile.report.workbook import write_workbook
from reconcile.settings import Settings
from reconcile.sources.choose import choose_source

PERIOD = parse_period("2026-10", None, None, "Asia/Shanghai")


@pytest.fixture(scope="module")
def demo_month(demo_gateway: Gateway) -> tuple[pd.DataFrame, Period]:
    """The demo month as fetched from the built-in gateway (ids made unique as a run does)."""
    period = parse_period(demo.PERIOD, None, None, demo.TIMEZONE)
    settings = Settings(
        base_url=demo_gateway.url,
        api_keys=SecretStr(",".join(demo_gateway.keys)),
        timezone=demo.TIMEZONE,
    )
    return with_unique_ids(choose_source(settings).fetch(period)).logs, period


def test_the_demo_month_priced_day_by_day_adds_up_to_the_whole_month(
    demo_month: tuple[pd.DataFrame, Period],
) -> None:
    logs, period = demo_month
    rules = load_rules(demo.FILES.rules)
    whole = LogAggregates.of(logs, price_logs(logs, rules, period.tz).priced, period)
    store = FrameStore(logs, period)
    days = []
    for i in range(store.days):
        day = store.day(i)
        days.append(LogAggregates.of(day, price_logs(day, rules, period.tz).priced, period))
    assert combine(days) == whole

    # the demo has what the report lists: refunds, top-ups, errors, unpriced models
    consume = logs[logs["type"] == CONSUME]
    assert whole.by_type["consume"] == (len(consume), int(consume["quota"].sum()))
    assert {"refund", "topup", "error"} <= set(whole.by_type)
    assert whole.by_status["unpriced"][0] > 0
    assert whole.by_path[NO_PATH][0] > 0
    assert len(whole.refunds_topups) == whole.by_type["refund"][0] + whole.by_type["topup"][0]
    # every consume log is in exactly one day, one model, one token and one status
    for table, column in (("by_day", 0), ("by_model", 0), ("by_token", 0), ("by_status", 0)):
        assert sum(v[column] for v in getattr(whole, table).values()) == len(consume)


def _day_seconds(draw: st.DrawFn) -> int:
    # days 3, 4 and 17 never have a log; some logs sit on a local midnight
    day = draw(st.sampled_from([d for d in range(31) if d not in (3, 4, 17)]))
    start = PERIOD.start_ts + day * 86400
    return int(draw(st.sampled_from([start, start + 86399, start + draw(st.integers(0, 86399))])))


NAMES = st.sampled_from([None, "", "  ", "gpt-4o", "gpt-4o-mini", "(none)", "研发部", "=1+1"])
BIG = 2**62  # two of these overflow int64: the sums must stay exact


@st.composite
def months(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Logs of every type and a pricing table with every status, reason and oddity."""
    n = draw(st.integers(0, 40))
    logs: list[dict[str, Any]] = []
    priced: list[dict[str, Any]] = []
    for i in range(n):
        kind = draw(st.sampled_from([CONSUME, CONSUME, CONSUME, REFUND, TOPUP, ERROR]))
        quota = draw(st.one_of(st.integers(0, 10**6), st.just(BIG)))
        logs.append(
            {
                "id": i + 1,
                "created_at": _day_seconds(draw),
                "type": kind,
                "key_ref": draw(st.sampled_from(["key-a", "key-b"])),
                "token_name": draw(NAMES),
                "model_name": draw(NAMES),
                "quota": quota,
                "prompt_tokens": draw(st.integers(0, 5000)),
                "completion_tokens": draw(st.integers(0, 5000)),
                "content": f"log {i}",
            }
        )
        status = draw(st.sampled_from(["ok", "mismatch", "unpriced", "not_repriceable", None]))
        if kind != CONSUME or status is None:  # None: the pricing table lacks the log
            continue
        expected = None if status in ("unpriced", "not_repriceable") else quota - 7
        priced.append(
            {
                "id": i + 1,
                "rule": draw(st.sampled_from(["", "gpt-4o*", "mini"])) if expected else "",
                "expected_quota": expected,
                "status": status,
                "path": draw(st.sampled_from(["", " text ", "text", "cache", None])),
                "reason_code": draw(st.sampled_from(["", None, "task_settlement", "tool"])),
            }
        )
    frame = pd.DataFrame(logs, columns=list(LOG_DTYPES))
    for col, dtype in LOG_DTYPES.items():
        filler = "" if col in ("other", "group", "username", "request_id") else 0
        frame[col] = frame[col].astype(dtype) if dtype == "string" else frame[col].fillna(filler)
    frame = frame.astype(LOG_DTYPES)
    table = pd.DataFrame(
        priced, columns=["id", "rule", "expected_quota", "status", "path", "reason_code"]
    ).astype({"id": "int64", "expected_quota": "Int64"})
    for col in ("rule", "status", "path", "reason_code"):
        table[col] = table[col].astype("string")
    return frame, table


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(months(), st.data())
def test_any_cut_of_the_logs_combines_to_the_whole(
    month: tuple[pd.DataFrame, pd.DataFrame], data: st.DataObject
) -> None:
    logs, priced = month
    whole = LogAggregates.of(logs, priced, PERIOD)
    # any split of the logs in any order, each part with only its own pricing rows
    order = data.draw(st.permutations(range(len(logs))))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(logs)), max_size=4)))
    parts = []
    for lo, hi in zip([0, *cuts], [*cuts, len(logs)], strict=True):
        part = logs.iloc[list(order[lo:hi])]
        parts.append(LogAggregates.of(part, priced[priced["id"].isin(part["id"])], PERIOD))
    assert combine(parts) == whole

    consume = logs[logs["type"] == CONSUME]
    exact = sum(int(q) for q in consume["quota"])
    assert whole.by_type.get("consume", (0, 0)) == (len(consume), exact)
    assert sum(v[1] for v in whole.by_day.values()) == exact  # every log is inside the period
    assert sum(v[0] for v in whole.by_model.values()) == len(consume)
    assert sum(v[1] for v in whole.by_status.values()) == exact
    assert not set(whole.by_path) & {"", " text "}  # blank paths are "none", names stripped
    assert not set(whole.by_reason) & {""}
    assert NO_NAME in whole.by_token or logs["token_name"].notna().all()
    if whole.by_reason:
        assert whole.by_status["not_repriceable"][0] == sum(v[0] for v in whole.by_reason.values())
    else:
        assert "not_repriceable" not in whole.by_status
    assert (
        NO_REASON not in whole.by_reason
        or priced["reason_code"].isna().any()
        or (priced["reason_code"] == "").any()
    )


def test_days_cut_by_the_store_with_the_month_pricing_table_combine_to_the_whole() -> None:
    # days with no logs, hostile names, a refund, a top-up and an error, unpriced models;
    # each day is given the whole month's pricing table (other days' rows are ignored)
    logs = report_helpers.logs()
    priced = report_helpers.priced(logs)
    store = FrameStore(logs, PERIOD)
    days = [LogAggregates.of(store.day(i), priced, PERIOD) for i in range(store.days)]
    assert sum(1 for i in range(store.days) if not len(store.day(i))) > 0
    whole = LogAggregates.of(logs, priced, PERIOD)
    assert combine(days) == whole
    # the columns it reads are enough
    narrow = LogAggregates.of(logs[LOG_COLUMNS_READ], priced[PRICED_COLUMNS_READ], PERIOD)
    assert narrow == whole


def test_the_report_from_the_days_combined_is_byte_for_byte_the_months(tmp_path: Path) -> None:
    result = report_helpers.make_result()
    store = FrameStore(result.fetch.logs, PERIOD)
    priced = result.pricing.priced
    days = combine([LogAggregates.of(store.day(i), priced, PERIOD) for i in range(store.days)])
    cut = replace(result, aggregates=days)
    assert summary_json(build_summary(cut)) == summary_json(build_summary(result))
    write_workbook(result, tmp_path / "month.xlsx")
    write_workbook(cut, tmp_path / "days.xlsx")
    assert (tmp_path / "days.xlsx").read_bytes() == (tmp_path / "month.xlsx").read_bytes()


def test_no_logs_give_empty_aggregates_and_combine_of_nothing_is_empty() -> None:
    logs = pd.DataFrame({c: pd.Series(dtype=t) for c, t in LOG_DTYPES.items()})
    priced = pd.DataFrame({"id": pd.Series(dtype="int64")})
    empty = LogAggregates.of(logs, priced, PERIOD)
    assert empty == combine([]) == combine([empty, empty])
    assert not empty.by_type
    assert not len(empty.refunds_topups)
    assert list(empty.refunds_topups.columns) == list(combine([]).refunds_topups.columns)
    assert np.array_equal(empty.refunds_topups.dtypes, combine([]).refunds_topups.dtypes)


def test_by_day_keeps_refunds_topups_and_ledger_rows_of_days_without_consume_logs() -> None:
    result = report_helpers.make_result()
    logs = result.fetch.logs.copy()
    quiet = PERIOD.start_ts + 24 * 86400 + 3600  # 25 October: no consume log that day
    assert "2026-10-25" not in result.aggregates.by_day
    logs.loc[logs["type"].isin([REFUND, TOPUP]), "created_at"] = quiet
    assert result.ledger is not None
    rows = result.ledger.rows.copy()
    rows.loc[rows.index[:3], "created_at"] = quiet
    cut = replace(
        result,
        aggregates=LogAggregates.of(logs, result.pricing.priced, PERIOD),
        ledger=replace(result.ledger, rows=rows),
    )
    table, has_book, _ = tables.by_day(cut)
    assert has_book
    day = table[table["day"] == "2026-10-25"].iloc[0]
    assert int(day["logs"]) == 0
    assert int(day["refund"]) == int(logs.loc[logs["type"] == REFUND, "quota"].sum())
    assert int(day["topup"]) == int(logs.loc[logs["type"] == TOPUP, "quota"].sum())
    book = tables.book_consume(cut.ledger)
    booked = int(book.loc[book["created_at"] == quiet, "quota"].sum())
    assert booked > 0
    assert int(day["ledger"]) == booked


def _without_frames(result: RunResult) -> RunResult:
    """The run as a day-by-day run may keep it: no logs, no pricing table."""
    fetch = replace(result.fetch, logs=result.fetch.logs.iloc[0:0])
    pricing = replace(result.pricing, priced=result.pricing.priced.iloc[0:0])
    return replace(result, fetch=fetch, pricing=pricing)


@pytest.mark.parametrize(
    "make", [report_helpers.make_result, report_helpers.invoice_result, report_helpers.clean_result]
)
def test_the_report_needs_neither_the_logs_nor_the_pricing_table(
    make: Callable[[], RunResult], tmp_path: Path
) -> None:
    result = make()
    bare = _without_frames(result)
    assert summary_json(build_summary(bare)) == summary_json(build_summary(result))
    write_workbook(result, tmp_path / "full.xlsx")
    write_workbook(bare, tmp_path / "bare.xlsx")
    assert (tmp_path / "bare.xlsx").read_bytes() == (tmp_path / "full.xlsx").read_bytes()
    write_discrepancies_csv(bare.findings, tmp_path / "bare.csv")
    write_discrepancies_csv(result.findings, tmp_path / "full.csv")
    assert (tmp_path / "bare.csv").read_bytes() == (tmp_path / "full.csv").read_bytes()


def test_sums_beyond_64_bits_reach_every_sheet_exactly(tmp_path: Path) -> None:
    result = report_helpers.make_result()
    logs = result.fetch.logs.copy()
    big = logs.index[(logs["type"] == CONSUME) & (logs["model_name"] == "gpt-4o")][:2]
    logs.loc[big, "quota"] = 2**63 - 1
    priced = result.pricing.priced
    big_result = replace(result, aggregates=LogAggregates.of(logs, priced, PERIOD))
    write_workbook(big_result, tmp_path / "big.xlsx")
    book = load_workbook(tmp_path / "big.xlsx", read_only=True)
    gpt4o = logs[(logs["type"] == CONSUME) & (logs["model_name"] == "gpt-4o")]
    want = sum(int(q) for q in gpt4o["quota"])
    assert want > 2**64  # wrapped twice in int64: it must not be
    # a workbook number is a double written to 16 digits, as on the Summary sheet: never wrapped
    sheet = list(book["By model"].iter_rows(values_only=True))
    header = next(r for r in sheet if r and r[0] == "Model")
    row = next(r for r in sheet if r and r[0] == "gpt-4o")
    assert row[header.index("Charged quota")] == pytest.approx(want, rel=1e-15)
    total = next(r for r in sheet if r and r[0] == "Total")
    consume = logs.loc[logs["type"] == CONSUME, "quota"]
    assert total[header.index("Charged quota")] == pytest.approx(
        sum(int(q) for q in consume), rel=1e-15
    )
