"""fetch_logs against the built-in gateway on 127.0.0.1: complete, exactly once, key-safe."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import random
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from reconcile.core.period import Period, parse_period
from reconcile.core.results import FetchResult
from reconcile.core.schema import LOG_DTYPES
from reconcile.demo.gateway import Faults, GatewayServer, LogStore
from reconcile.errors import GatewayError, InputError
from reconcile.settings import ApiKey, Settings
from reconcile.sources import engine as fetch
from reconcile.sources import http as fetch_http
from reconcile.sources.items import logs_frame
from reconcile.sources.progress import FetchProgress
from reconcile.sources.token import fetch_logs

PERIOD = parse_period("2026-10", None, None, "Asia/Shanghai")
START, END = PERIOD.start_ts, PERIOD.end_ts  # END is exclusive
KEY_A = "sk-fetchtestAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
KEY_B = "sk-fetchtestBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_http, "BACKOFF_BASE", 0.01)


def fill(
    store: LogStore,
    n: int,
    keys: tuple[str, ...] = (KEY_A,),
    lo: int = START,
    hi: int = END - 1,
    seed: int = 7,
    **fields: Any,
) -> None:
    """n logs spread over [lo, hi] and over keys, inserted in time order (ids rise with time)."""
    rng = random.Random(seed)
    for created in sorted(rng.randint(lo, hi) for _ in range(n)):
        key = keys[rng.randrange(len(keys))]
        store.insert(
            key,
            created_at=created,
            type=rng.choice((2, 2, 2, 2, 5, 6, 1)),
            quota=rng.randint(1, 9000),
            **fields,
        )


def settings(url: str, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "base_url": url,
        "concurrency": 8,
        "timeout": 2.0,
        "max_retries": 8,
        "retry_budget": 20.0,
        "window_rows": 2000,
    }
    base.update(kw)
    return Settings(**base)


def ids_of(result: FetchResult, key: str | None = None) -> set[int]:
    logs = result.logs
    if key is not None:
        logs = logs[logs["key_ref"] == ApiKey.of(key).ref]
    return set(logs["id"].tolist())


def expected(store: LogStore, key: str = KEY_A, period: Period = PERIOD) -> set[int]:
    return store.ids(key, period.start_ts, period.end_ts - 1)


@pytest.fixture
def store() -> LogStore:
    s = LogStore()
    fill(s, 750)
    return s


@pytest.fixture
def gateway(store: LogStore) -> Iterator[GatewayServer]:
    with GatewayServer(store) as srv:
        yield srv


def run(srv: GatewayServer, keys: tuple[str, ...] = (KEY_A,), **kw: Any) -> FetchResult:
    return fetch_logs(settings(srv.url, **kw), PERIOD, [ApiKey.of(k) for k in keys])


# -- the normal case --------------------------------------------------------------------------


def test_a_window_of_several_pages_is_fetched_completely(
    store: LogStore, gateway: GatewayServer
) -> None:
    result = run(gateway)
    assert ids_of(result) == expected(store)
    assert len(result.logs) == 750
    assert dict(result.logs.dtypes.astype(str)) == {**LOG_DTYPES, "row_key": "string"}
    assert result.logs["created_at"].is_monotonic_increasing
    assert [(w.total, w.ids, w.pages, w.attempts) for w in result.windows] == [(750, 750, 8, 1)]
    assert gateway.requests == 8  # the first page doubles as the probe
    assert result.duplicates == 0
    assert result.base_url == gateway.url
    assert set(result.logs["key_ref"]) == {ApiKey.of(KEY_A).ref}


def test_a_busy_period_is_split_into_windows_without_deep_offsets() -> None:
    store = LogStore()
    fill(store, 2400)
    fill(store, 900, lo=START + 86400 * 9, hi=START + 86400 * 9 + 3600, seed=8)  # a busy hour
    with GatewayServer(store) as srv:
        result = run(srv, window_rows=200)
    assert ids_of(result) == expected(store)
    windows = sorted(result.windows, key=lambda w: w.start)
    assert all(w.total == w.ids <= 200 for w in windows)
    # the windows tile the period exactly: no gap, no overlap
    assert windows[0].start == START
    assert windows[-1].end == END - 1
    assert all(a.end + 1 == b.start for a, b in itertools.pairwise(windows))


def test_more_logs_in_one_second_than_a_window_holds_are_still_all_fetched(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = LogStore()
    fill(store, 30)
    fill(store, 250, lo=START + 5000, hi=START + 5000, seed=3)
    with GatewayServer(store) as srv:
        result = run(srv, window_rows=100)
    assert ids_of(result) == expected(store)
    assert "within one second" in caplog.text


def test_no_more_connections_than_the_concurrency_setting_each_kept_alive() -> None:
    store = LogStore()
    fill(store, 3000)
    with GatewayServer(store, Faults(latency=0.005)) as srv:
        result = run(srv, concurrency=3, window_rows=400)
        assert ids_of(result) == expected(store)
        assert len(result.windows) > 3  # windows fetched side by side, contending for slots
        assert srv.peak_connections == 3
        assert srv.connections_opened == 3  # kept alive: no connection per request
        assert srv.requests > 30


def test_period_boundaries_start_included_end_excluded() -> None:
    store = LogStore()
    at = {"before": START - 1, "start": START, "last": END - 1, "end": END}
    ids = {name: store.insert(KEY_A, created_at=ts, type=2) for name, ts in at.items()}
    with GatewayServer(store) as srv:
        result = run(srv)
    assert ids_of(result) == {ids["start"], ids["last"]}
    assert result.outside_window == 0


def test_an_empty_period_gives_an_empty_typed_table() -> None:
    store = LogStore()
    store.insert(KEY_A, created_at=START - 10)  # the key exists, but not in this period
    with GatewayServer(store) as srv:
        result = run(srv)
    assert len(result.logs) == 0
    assert dict(result.logs.dtypes.astype(str)) == {**LOG_DTYPES, "row_key": "string"}
    assert [(w.total, w.ids) for w in result.windows] == [(0, 0)]


def test_several_keys_are_fetched_separately_and_kept_apart() -> None:
    store = LogStore()
    fill(store, 900, keys=(KEY_A, KEY_B))
    with GatewayServer(store) as srv:
        result = run(srv, keys=(KEY_A, KEY_B), window_rows=300)
    assert ids_of(result, KEY_A) == expected(store, KEY_A)
    assert ids_of(result, KEY_B) == expected(store, KEY_B)
    assert not expected(store, KEY_A) & expected(store, KEY_B)
    assert result.key_refs == [ApiKey.of(KEY_A).ref, ApiKey.of(KEY_B).ref]
    assert {w.key_ref for w in result.windows} == set(result.key_refs)


def test_manage_and_system_logs_are_counted_not_kept() -> None:
    store = LogStore()
    for i, log_type in enumerate((2, 3, 4, 6, 7, 1, 5)):
        store.insert(KEY_A, created_at=START + i, type=log_type)
    with GatewayServer(store) as srv:
        result = run(srv)
    assert sorted(result.logs["type"]) == [1, 2, 5, 6]
    assert result.other_types == 3
    assert result.windows[0].total == result.windows[0].ids == 7


def test_items_of_older_servers_get_defaults() -> None:
    store = LogStore()
    store.add(KEY_A, {"id": 1, "created_at": START, "type": 2, "quota": 10})  # bare minimum
    store.add(
        KEY_A,
        {
            "id": 2,
            "created_at": START + 1,
            "type": 2,
            "quota": 7.0,
            "username": None,
            "is_stream": None,
            "other": {"model_ratio": 2.5, "cache_ratio": 0.1},  # newer servers: an object
            "channel_name": "ignored",
        },
    )
    with GatewayServer(store) as srv:
        logs = run(srv).logs.set_index("id")
    assert logs.loc[1, "username"] == ""
    assert logs.loc[1, "request_id"] == ""
    assert logs.loc[1, "channel"] == 0
    assert not logs.loc[1, "is_stream"]
    assert logs.loc[2, "quota"] == 7
    assert logs.loc[2, "other"] == '{"model_ratio":2.5,"cache_ratio":0.1}'
    assert "channel_name" not in logs.columns


def test_an_unreadable_field_is_a_gateway_error_naming_log_and_field() -> None:
    store = LogStore()
    store.add(KEY_A, {"id": 41, "created_at": START, "type": 2, "quota": "lots"})
    with GatewayServer(store) as srv, pytest.raises(GatewayError, match=r"log 41 .*`quota`"):
        run(srv)


def test_progress_is_reported_until_every_window_is_done(store: LogStore) -> None:
    seen: list[FetchProgress] = []
    with GatewayServer(store) as srv:
        fetch_logs(settings(srv.url, window_rows=200), PERIOD, [ApiKey.of(KEY_A)], seen.append)
    last = seen[-1]
    assert last.windows_done == last.windows_total > 1
    assert last.keys_done == last.keys_total == 1
    assert last.logs == 750  # distinct logs fetched, not rows received
    assert [p.pages for p in seen] == sorted(p.pages for p in seen)


def test_works_when_called_from_inside_an_event_loop(gateway: GatewayServer) -> None:
    async def caller() -> FetchResult:
        return run(gateway)

    assert len(asyncio.run(caller()).logs) == 750


# -- faults -------------------------------------------------------------------------------------

FAULTS = {
    "429": Faults(status_429_every=4, retry_after=0.05),
    "5xx": Faults(status_500_every=3, error_status=502),
    "timeout": Faults(timeout_every=5, hang_seconds=3),
    "truncate": Faults(truncate_every=3),
    "fail": Faults(fail_every=3),
    "insert": Faults(insert_every=4, seed=1),
    "delete": Faults(delete_every=6, seed=2),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_alone_still_gives_exactly_the_gateways_logs(
    fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = LogStore()
    fill(store, 1200)
    caplog.set_level(logging.INFO, logger="reconcile.sources.engine")
    with GatewayServer(store, FAULTS[fault]) as srv:
        result = run(srv, window_rows=400, timeout=0.4)
        served = dict(srv.stats)
    assert served[fault] > 0  # the fault really happened
    assert ids_of(result) == expected(store)  # what the gateway holds at the end
    assert len(result.logs) == result.logs["id"].nunique()
    if fault in ("insert", "delete"):
        assert "repairing" in caplog.text
        assert max(w.attempts for w in result.windows) > 1
    else:
        assert "retry" in caplog.text


def test_all_faults_together() -> None:
    store = LogStore()
    fill(store, 2500, keys=(KEY_A, KEY_B))
    faults = Faults(
        status_429_every=7,
        retry_after=0.05,
        status_500_every=11,
        timeout_every=13,
        hang_seconds=3,
        truncate_every=17,
        fail_every=19,
        insert_every=23,
        seed=5,
    )
    with GatewayServer(store, faults) as srv:
        result = run(srv, keys=(KEY_A, KEY_B), window_rows=300, timeout=0.4)
        served = dict(srv.stats)
    assert {"429", "5xx", "timeout", "truncate", "fail", "insert"} <= set(served)
    assert ids_of(result, KEY_A) == expected(store, KEY_A)
    assert ids_of(result, KEY_B) == expected(store, KEY_B)


def test_rows_inserted_during_paging_are_not_lost_or_double_counted() -> None:
    store = LogStore()
    fill(store, 1000)
    with GatewayServer(store, Faults(insert_every=2, seed=4)) as srv:
        result = run(srv, concurrency=4)
        inserted = set(srv.inserted)
    assert inserted
    assert inserted <= ids_of(result)
    assert ids_of(result) == expected(store)
    assert result.duplicates > 0  # rows shifted onto a later page were seen twice, kept once
    assert len(result.logs) == len(expected(store))


@pytest.mark.parametrize("seed", [0, 6, 7, 9])
def test_rows_deleted_during_paging_are_dropped_and_no_shifted_row_is_lost(seed: int) -> None:
    # A deletion shifts the rows after it up one place: one crosses back over a page boundary
    # unseen while the deleted one was already read, so the count still matches. One
    # connection makes the order of requests, hence of deletions, the same every run; these
    # seeds each delete an already-read log at least once.
    store = LogStore()
    fill(store, 600)
    with GatewayServer(store, Faults(delete_every=4, seed=seed)) as srv:
        result = run(srv, concurrency=1)
        deleted = set(srv.deleted)
    assert deleted
    assert not deleted & ids_of(result)
    assert ids_of(result) == expected(store)
    assert len(result.logs) == len(expected(store))


def test_a_window_that_never_settles_is_a_gateway_error_naming_it() -> None:
    store = LogStore()
    fill(store, 400)
    with GatewayServer(store, Faults(insert_every=1)) as srv:
        started = time.monotonic()
        with pytest.raises(GatewayError) as err:
            run(srv)
    message = str(err.value)
    assert ApiKey.of(KEY_A).ref in message
    assert "2026-10-01T00:00:00+08:00 .. 2026-10-31T23:59:59+08:00" in message
    assert "kept changing" in message
    assert time.monotonic() - started < 20


def test_retries_are_bounded_in_count() -> None:
    store = LogStore()
    fill(store, 10)
    with GatewayServer(store, Faults(status_500_every=1)) as srv:
        with pytest.raises(GatewayError, match=r"HTTP 500; gave up after 4 attempts") as err:
            run(srv, max_retries=3)
        assert srv.requests == 4
    assert "window 2026-10-01T00:00:00+08:00" in str(err.value)
    assert gc.isenabled()  # the collector, paused while fetching, is back


def test_retries_are_bounded_in_time_and_honour_retry_after() -> None:
    store = LogStore()
    fill(store, 10)
    with GatewayServer(store, Faults(status_429_every=1, retry_after=30)) as srv:
        started = time.monotonic()
        with pytest.raises(GatewayError, match=r"HTTP 429.*retry budget 5s"):
            run(srv, retry_budget=5)
        assert time.monotonic() - started < 3  # a 30 s Retry-After is not waited for
        assert srv.requests == 1


@pytest.mark.parametrize(("status", "message"), [(200, "record not found"), (401, "无效的令牌")])
def test_a_bad_key_fails_at_once_with_a_clear_message(status: int, message: str) -> None:
    store = LogStore()
    fill(store, 500)
    with GatewayServer(store, unknown_key_status=status, unknown_key_message=message) as srv:
        with pytest.raises(GatewayError) as err:
            run(srv, keys=(KEY_A, KEY_B))
        requests, asked = srv.requests, srv.by_key[KEY_B]
    text = str(err.value)
    assert f"rejected API key {ApiKey.of(KEY_B).ref}" in text
    assert message in text
    assert KEY_B not in text
    assert asked == 1  # the bad key was tried once: not retried, not fanned out
    assert requests <= 1 + 5  # and the good key's pages stopped with it


def test_a_gateway_reading_the_key_only_from_the_query_string_still_works() -> None:
    store = LogStore()
    fill(store, 300)
    with GatewayServer(store, accept_bearer=False) as srv:
        result = run(srv)
    assert ids_of(result) == expected(store)


def test_an_unpaged_list_of_every_log_is_used_and_filtered_to_the_period() -> None:
    store = LogStore()
    fill(store, 30)
    fill(store, 5, lo=START - 86400, hi=START - 1, seed=3)  # before the period
    with GatewayServer(store, legacy_list=True) as srv:
        result = run(srv)
    assert ids_of(result) == expected(store)
    assert result.source == "token"


def content_of(logs: pd.DataFrame) -> list[tuple[int, int, int]]:
    return sorted(zip(logs["created_at"], logs["type"], logs["quota"], strict=True))


def store_content(store: LogStore, key: str = KEY_A) -> list[tuple[int, int, int]]:
    _, items = store.query(key, START, END - 1, offset=0, limit=10**9)
    return sorted((int(i["created_at"]), int(i["type"]), int(i["quota"])) for i in items)


@pytest.mark.parametrize(("style", "scheme"), [("row_number", "position"), ("mod1024", "mod1024")])
def test_rewritten_log_ids_are_read_by_content_never_merged(style: str, scheme: str) -> None:
    store = LogStore()
    fill(store, 2500)
    with GatewayServer(store, id_style=style) as srv:
        result = run(srv, window_rows=1500)
    assert result.id_scheme == scheme
    assert content_of(result.logs) == store_content(store)
    assert result.logs["row_key"].is_unique


def test_ids_mod_1024_that_never_collide_are_still_seen_to_wrap() -> None:
    store = LogStore()
    fill(store, 900, lo=START - 86400, hi=START - 1)  # ids 1..900 before the period
    fill(store, 600, seed=3)  # ids 901..1500: shown as 901..1023, 0..476
    with GatewayServer(store, id_style="mod1024") as srv:
        result = run(srv)
    assert result.id_scheme == "mod1024"
    assert content_of(result.logs) == store_content(store)


def test_the_same_token_configured_twice_is_refused() -> None:
    store = LogStore()
    for i in range(5):
        item = {"id": i + 1, "created_at": START + i, "type": 2, "quota": 3}
        store.add(KEY_A, item)
        store.add(KEY_B, item)
    with GatewayServer(store) as srv, pytest.raises(InputError, match="same token"):
        run(srv, keys=(KEY_A, KEY_B))


@pytest.mark.parametrize(
    ("url", "match"),
    [
        (None, "no gateway URL"),
        ("ftp://example.com", "http:// or https://"),
        ("https://example.com/?key=sk-x", "query string"),
    ],
)
def test_configuration_errors_are_input_errors(url: str | None, match: str) -> None:
    with pytest.raises(InputError, match=match):
        fetch_logs(Settings(base_url=url), PERIOD, [ApiKey.of(KEY_A)])
    with pytest.raises(InputError, match="RECONCILE_API_KEYS"):
        fetch_logs(Settings(base_url="http://127.0.0.1:9"), PERIOD, [])


def test_an_unreachable_gateway_is_a_gateway_error() -> None:
    with pytest.raises(GatewayError, match="connection failed"):
        fetch_logs(
            Settings(base_url="http://127.0.0.1:9", max_retries=1, timeout=1),
            PERIOD,
            [ApiKey.of(KEY_A)],
        )


# -- narrow units (no server) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 2.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None), (None, None), ("nan", None)],
)
def test_retry_after_values(header: str | None, seconds: float | None) -> None:
    assert fetch_http.retry_after(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    from email.utils import formatdate

    value = fetch_http.retry_after(formatdate(time.time() + 60, usegmt=True))
    assert value is not None
    assert 55 < value <= 61


def test_windows_split_into_contiguous_inclusive_ranges() -> None:
    assert fetch.split(0, 9, 3) == [(0, 2), (3, 5), (6, 9)]
    assert fetch.split(5, 6, 10) == [(5, 5), (6, 6)]
    parts = fetch.split(START, END - 1, 7)
    assert sum(b - a + 1 for a, b in parts) == END - START


def test_frame_of_no_logs_has_the_schema() -> None:
    frame, others = logs_frame([])
    assert isinstance(frame, pd.DataFrame)
    assert others == 0
    assert dict(frame.dtypes.astype(str)) == LOG_DTYPES


def test_a_period_that_is_not_over_is_fetched_up_to_a_minute_ago(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = int(time.time())
    utc = ZoneInfo("UTC")
    current = Period(
        start=datetime.fromtimestamp(now - 2 * 86400, utc),
        end=datetime.fromtimestamp(now + 2 * 86400, utc),
        label="this-week",
    )
    store = LogStore()
    past = store.insert(KEY_A, created_at=now - 3600)
    store.insert(KEY_A, created_at=now + 5)  # still being written (or a skewed clock)
    with GatewayServer(store) as srv:
        result = fetch_logs(settings(srv.url), current, [ApiKey.of(KEY_A)])
    assert ids_of(result) == {past}
    assert result.windows[-1].end <= now - fetch.LIVE_MARGIN
    assert "is not over" in caplog.text
