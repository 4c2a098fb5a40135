"""A hostile gateway on 127.0.0.1: the period is read exactly, or exit 3 saying what was seen."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from test_fetch import KEY_A, PERIOD, expected, fill, ids_of, run

from reconcile.demo.gateway import GatewayServer, LogStore
from reconcile.demo.hostile import Hostile
from reconcile.errors import GatewayError, IncompatibleGateway, InputError
from reconcile.settings import ApiKey, Settings, load_settings
from reconcile.sources import http as fetch_http
from reconcile.sources.snapshot import write_snapshot
from reconcile.sources.token import fetch_logs


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_http, "BACKOFF_BASE", 0.01)


def store_of(n: int, **fields: Any) -> LogStore:
    store = LogStore()
    fill(store, n, **fields)
    return store


def test_a_gzip_compressing_gateway_is_read_completely() -> None:
    store = store_of(450)
    with GatewayServer(store, hostile=Hostile(gzip=True)) as srv:
        result = run(srv)
    assert ids_of(result) == expected(store)


def test_a_total_too_small_by_a_multiple_of_the_page_size_is_not_believed() -> None:
    store = store_of(1340)
    with GatewayServer(store, hostile=Hostile(lie_total=True)) as srv:
        result = run(srv, window_rows=500)
    assert ids_of(result) == expected(store)  # before: 40 logs of every 140 vanished


def test_a_total_one_page_short_with_a_full_last_page_is_not_believed() -> None:
    store = store_of(200)  # the gateway says 100: one full page, and the page after it unread
    with GatewayServer(store, hostile=Hostile(lie_total=True)) as srv:
        result = run(srv)
    assert ids_of(result) == expected(store)  # before: 100 logs vanished, exit 0


def test_a_gateway_ignoring_time_filters_fails_fast_instead_of_recursing() -> None:
    store = store_of(3000)
    with GatewayServer(store, hostile=Hostile(ignore_filters=True)) as srv:
        started = time.monotonic()
        with pytest.raises(IncompatibleGateway, match="ignores start_timestamp/end_timestamp"):
            run(srv, window_rows=500)
        assert srv.requests < 20
    assert time.monotonic() - started < 10


def test_a_dripped_body_cannot_hold_a_request_beyond_the_timeout() -> None:
    store = store_of(30)
    with GatewayServer(store, hostile=Hostile(drip_seconds=0.02)) as srv:
        started = time.monotonic()
        with pytest.raises(GatewayError, match=r"no complete answer within 0\.3s"):
            run(srv, timeout=0.3, max_retries=1)
        elapsed = time.monotonic() - started
    assert elapsed < 3  # two attempts of 0.3 s, not a body of minutes


@pytest.mark.parametrize(
    ("hostile", "match"),
    [
        (Hostile(milliseconds=True), "created_at values are in milliseconds"),
        (Hostile(zero_based=True), "number pages from 0"),
        (Hostile(null_items=True), "items: null"),
        (Hostile(page_cap=50), "caps pages below 100 without saying so"),
    ],
)
def test_a_misbehaviour_is_named_not_called_changing_logs(hostile: Hostile, match: str) -> None:
    store = store_of(300)
    with (
        GatewayServer(store, hostile=hostile) as srv,
        pytest.raises(IncompatibleGateway, match=match),
    ):
        run(srv, max_retries=1)


def test_a_key_echoed_by_the_gateway_reaches_no_output(tmp_path: Path) -> None:
    store = store_of(120)
    with GatewayServer(store, hostile=Hostile(echo_secret=True)) as srv:
        result = run(srv)
    ref = ApiKey.of(KEY_A).ref
    assert set(result.logs["token_name"]) == {f"<{ref}>"}
    for column in ("token_name", "content", "other", "username"):
        assert not result.logs[column].str.contains(KEY_A[:12], regex=False).any()
    write_snapshot(result, tmp_path)
    for path in tmp_path.iterdir():
        assert KEY_A[:12].encode() not in path.read_bytes()


def test_the_cli_run_against_an_echoing_gzip_gateway_leaks_nothing(tmp_path: Path) -> None:
    store = store_of(60)
    with GatewayServer(store, hostile=Hostile(echo_secret=True, gzip=True)) as srv:
        env = {"RECONCILE_BASE_URL": srv.url, "RECONCILE_API_KEYS": KEY_A}
        ran = run_cli(
            "fetch",
            "--period",
            "2026-10",
            "--tz",
            "Asia/Shanghai",
            "--out",
            tmp_path / "out",
            env=env,
            cwd=tmp_path,
        )
    assert ran.code == 0, ran.stderr
    assert KEY_A[:12] not in ran.stdout + ran.stderr
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert KEY_A[:12].encode() not in path.read_bytes()


@pytest.mark.parametrize(
    "key",
    [
        "sk-withnewline0123456789\nabcdef",
        "sk-with space0123456789abcdef",
        "sk-nonascii0123456789abcdé",
        "sk-control0123456789abc\x07def",
    ],
)
def test_a_key_an_http_header_cannot_carry_is_refused_at_configuration(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILE_API_KEYS", f"sk-good0123456789abcdef,{key}")
    with pytest.raises(InputError) as err:
        load_settings()
    assert err.value.field == "RECONCILE_API_KEYS"
    assert "credential 2" in str(err.value)
    assert key[3:12] not in str(err.value)


def test_the_cli_refuses_a_bad_key_and_a_malformed_url_with_exit_2(tmp_path: Path) -> None:
    bad_key = run_cli(
        "fetch",
        "--period",
        "2026-10",
        env={
            "RECONCILE_BASE_URL": "http://127.0.0.1:9",
            "RECONCILE_API_KEYS": "sk-ab\u00e9cdefghijklmnopq",
        },
        cwd=tmp_path,
    )
    assert bad_key.code == 2
    assert bad_key.stderr.count("\n") == 1
    assert "RECONCILE_API_KEYS" in bad_key.stderr
    assert "Traceback" not in bad_key.stderr
    bad_url = run_cli(
        "fetch",
        "--period",
        "2026-10",
        env={"RECONCILE_BASE_URL": "http://[::1", "RECONCILE_API_KEYS": KEY_A},
        cwd=tmp_path,
    )
    assert bad_url.code == 2, bad_url.stderr
    assert bad_url.stderr.count("\n") == 1
    assert "RECONCILE_BASE_URL" in bad_url.stderr


def test_a_long_key_echoed_into_a_number_field_is_redacted_before_it_is_shortened() -> None:
    long_key = "tok_" + "L" * 44  # 48 characters: cut to 40 first, its prefix would leak
    store = LogStore()
    store.insert(long_key, created_at=PERIOD.start_ts + 5, quota=long_key)
    with GatewayServer(store) as srv, pytest.raises(GatewayError) as err:
        fetch_logs(Settings(base_url=srv.url), PERIOD, [ApiKey.of(long_key)])
    assert "`quota` not an integer" in str(err.value)
    assert "LLLLLLLL" not in str(err.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("quota", 2**63),
        ("quota", 2**64 - 1),
        ("prompt_tokens", 2**63),
        ("completion_tokens", 2**70),
        ("quota", -(2**63) - 1),
    ],
)
def test_a_number_beyond_64_bits_from_the_gateway_is_one_line_and_exit_3(
    tmp_path: Path, field: str, value: int
) -> None:
    # Regression: valid JSON, not a valid int64: an OverflowError (exit 70) at ingest, and
    # -(2**63) - 1 (parsed as a float) silently read as -(2**63).
    store = store_of(5)
    store.insert(KEY_A, created_at=PERIOD.start_ts + 50, **{field: value})
    with GatewayServer(store) as srv:
        env = {"RECONCILE_BASE_URL": srv.url, "RECONCILE_API_KEYS": KEY_A}
        ran = run_cli(
            "fetch",
            "--period",
            "2026-10",
            "--tz",
            "Asia/Shanghai",
            "--out",
            tmp_path / "out",
            env=env,
            cwd=tmp_path,
        )
    assert ran.code == 3, ran.stderr
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: log 6 from the gateway has `{field}` ")
    assert errors[0].endswith("beyond a 64-bit integer (the gateway's data cannot be read)")
    assert "Traceback" not in ran.stderr


def test_a_quota_of_2_63_minus_1_from_the_gateway_is_summed_exactly(tmp_path: Path) -> None:
    store = store_of(5)
    store.insert(KEY_A, created_at=PERIOD.start_ts + 50, quota=2**63 - 1)
    rules = Path(__file__).parents[2] / "rules" / "default.toml"
    with GatewayServer(store) as srv:
        env = {"RECONCILE_BASE_URL": srv.url, "RECONCILE_API_KEYS": KEY_A}
        ran = run_cli(
            "run",
            "--period",
            "2026-10",
            "--tz",
            "Asia/Shanghai",
            "--rules",
            rules,
            "--out",
            tmp_path / "out",
            env=env,
            cwd=tmp_path,
        )
        rows = store.between([KEY_A], PERIOD.start_ts, PERIOD.end_ts - 1)
        want = sum(int(r["quota"]) for r in rows if r["type"] == 2)
    assert ran.code in (0, 1), ran.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["logs"]["consume"]["quota"] == want > 2**63 - 1  # never wrapped negative
