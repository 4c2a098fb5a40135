"""The API key never leaves the process: not in logs, exceptions, or anything written."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from urllib.parse import quote

import pytest

from reconcile.core.period import parse_period
from reconcile.demo.gateway import Faults, GatewayServer, LogStore
from reconcile.errors import GatewayError
from reconcile.settings import ApiKey, Settings
from reconcile.sources import http as fetch_http
from reconcile.sources.snapshot import write_snapshot
from reconcile.sources.token import fetch_logs

PERIOD = parse_period("2026-10", None, None, "UTC")
GOOD = "sk-leakcheckGOOD0123456789abcdefghijklmnopqrstu"
BAD = "sk-leakcheckBAD/0123456789+abcdefghijklmnopqrst"  # characters that get URL-encoded


def forms(secret: str) -> list[str]:
    """The key as it could appear: raw, URL-encoded, and its distinctive tail."""
    return [secret, quote(secret, safe=""), secret.split("-", 1)[1]]


def assert_clean(text: str) -> None:
    for secret in (GOOD, BAD):
        for form in forms(secret):
            assert form not in text


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_http, "BACKOFF_BASE", 0.01)


def make_store() -> LogStore:
    store = LogStore()
    for i in range(450):
        store.insert(GOOD, created_at=PERIOD.start_ts + i * 3000, type=2, quota=i)
    return store


def test_no_key_in_logs_or_snapshot_even_when_it_travels_in_the_url(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, httpx's and httpcore's request logs included
    faults = Faults(status_429_every=5, retry_after=0.01, status_500_every=7, truncate_every=9)
    # an older gateway that reads only ?key=, so the key is in every request URL
    with GatewayServer(make_store(), faults, accept_bearer=False) as srv:
        settings = Settings(base_url=srv.url, concurrency=4, window_rows=200, timeout=2)
        result = fetch_logs(settings, PERIOD, [ApiKey.of(GOOD)])
    assert len(result.logs) == 450
    assert "HTTP Request: GET" in caplog.text  # httpx did log the URLs ...
    assert f"key=<{ApiKey.of(GOOD).ref}>" in caplog.text  # ... with the key replaced
    assert "retry" in caplog.text
    assert_clean(caplog.text)
    for record in caplog.records:
        assert_clean(record.getMessage())
    snap = write_snapshot(result, tmp_path / "snapshot")
    for path in snap.iterdir():
        assert_clean(path.read_bytes().decode("latin-1"))
    assert_clean(repr(result.windows) + repr(result.key_refs) + result.base_url)


@pytest.mark.parametrize("accept_bearer", [True, False])
def test_no_key_in_errors(caplog: pytest.LogCaptureFixture, accept_bearer: bool) -> None:
    caplog.set_level(logging.DEBUG)
    store = make_store()
    with GatewayServer(store, accept_bearer=accept_bearer) as srv:
        settings = Settings(base_url=srv.url, max_retries=1)
        with pytest.raises(GatewayError) as rejected:
            fetch_logs(settings, PERIOD, [ApiKey.of(GOOD), ApiKey.of(BAD)])
    with GatewayServer(store, Faults(status_500_every=1), accept_bearer=accept_bearer) as srv:
        settings = Settings(base_url=srv.url, max_retries=1)
        with pytest.raises(GatewayError) as exhausted:
            fetch_logs(settings, PERIOD, [ApiKey.of(GOOD)])
    for err in (rejected.value, exhausted.value):
        text = "".join(traceback.format_exception(err))
        assert_clean(text + repr(err))
        assert err.__cause__ is None
    assert ApiKey.of(BAD).ref in str(rejected.value)
    assert_clean(caplog.text)


def test_api_key_repr_hides_the_secret() -> None:
    assert_clean(repr(ApiKey.of(GOOD)) + str([ApiKey.of(GOOD)]))


def test_every_configured_credential_is_redacted() -> None:
    from pydantic import SecretStr

    from reconcile.core.redact import Redactor

    settings = Settings(
        api_keys=SecretStr("sk-secretsAAAAAAAAAAAAAAAA"),
        access_token=SecretStr("pat-BBBBBBBBBBBBBBBB"),
        log_dsn=SecretStr("postgresql://app:CCCCCCCCCCCC@127.0.0.1/logs"),
    )
    redact = Redactor(settings.secrets())
    text = redact("sk-secretsAAAAAAAAAAAAAAAA pat-BBBBBBBBBBBBBBBB password CCCCCCCCCCCC")
    assert "AAAA" not in text
    assert "BBBB" not in text
    assert "CCCC" not in text
