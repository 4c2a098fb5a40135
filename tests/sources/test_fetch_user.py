"""The self, admin and unpaged token sources against the built-in gateway on 127.0.0.1."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import run_cli
from pydantic import SecretStr
from test_fetch import END, KEY_A, KEY_B, PERIOD, START, fill

from reconcile.core.period import Period
from reconcile.core.results import FetchResult
from reconcile.demo.gateway import Faults, GatewayServer, LogStore
from reconcile.demo.users import User
from reconcile.errors import CredentialsRejected, GatewayError, InputError
from reconcile.settings import Settings
from reconcile.sources import http as fetch_http
from reconcile.sources.choose import choose_source
from reconcile.sources.snapshot import read_snapshot

TOKEN = "accesstoken-user7-0123456789abcdef"
ADMIN = "accesstoken-admin1-0123456789abcdef"
USER_ID = 7


def fetch_period(settings: Settings, period: Period) -> FetchResult:
    """The period's logs in memory, from the source the settings choose."""
    return choose_source(settings).fetch(period)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_http, "BACKOFF_BASE", 0.01)


def users(style: str = "row_number", stat_offset: int = 0) -> dict[str, User]:
    return {
        TOKEN: User(USER_ID, [KEY_A, KEY_B], id_style=style, stat_offset=stat_offset),  # type: ignore[arg-type]
        ADMIN: User(1, [], admin=True),
    }


def two_tokens(n: int = 600) -> LogStore:
    store = LogStore()
    fill(store, 40, keys=(KEY_A,), lo=START - 5000, hi=START - 1, token_name="alpha", seed=9)
    fill(store, n, keys=(KEY_A,), token_name="alpha")
    fill(store, n // 2, keys=(KEY_B,), token_name="beta", seed=8)
    return store


def month(store: LogStore, keys: tuple[str, ...] = (KEY_A, KEY_B)) -> Counter[tuple[Any, ...]]:
    rows = store.between(keys, START, END - 1)
    return Counter((r["created_at"], r["type"], r["quota"], r["token_name"]) for r in rows)


def got(logs: pd.DataFrame) -> Counter[tuple[Any, ...]]:
    cols = zip(logs["created_at"], logs["type"], logs["quota"], logs["token_name"], strict=True)
    return Counter(cols)


def settings(url: str, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "base_url": url,
        "access_token": SecretStr(TOKEN),
        "user_id": USER_ID,
        "concurrency": 8,
        "timeout": 2.0,
        "max_retries": 8,
        "retry_budget": 20.0,
    }
    base.update(kw)
    return Settings(**base)


@pytest.mark.parametrize(("style", "scheme"), [("row_number", "position"), ("mod1024", "mod1024")])
def test_self_reads_exactly_the_month_under_429s_and_5xx(style: str, scheme: str) -> None:
    store = two_tokens()
    faults = Faults(status_429_every=7, retry_after=0.01, status_500_every=11)
    with GatewayServer(store, faults, users=users(style)) as srv:
        result = fetch_period(settings(srv.url), PERIOD)
        assert srv.stats["429"]
        assert srv.stats["5xx"]
    assert (result.source, result.id_scheme) == ("self", scheme)
    assert got(result.logs) == month(store)
    assert result.logs["row_key"].is_unique
    assert result.gateway_stat_quota == int(
        result.logs.loc[result.logs["type"] == 2, "quota"].sum()
    )
    assert result.warnings == []


def test_self_with_token_names_reads_one_name_at_a_time() -> None:
    store = two_tokens()
    with GatewayServer(store, users=users()) as srv:
        result = fetch_period(settings(srv.url, token_names="beta"), PERIOD)
    assert got(result.logs) == month(store, (KEY_B,))
    assert set(result.logs["key_ref"]) == {f"user-{USER_ID}:beta"}


def test_equal_logs_in_one_second_are_two_logs_and_a_crowded_second_is_read_twice() -> None:
    store = LogStore()
    for _ in range(2):  # identical content, same second
        store.insert(KEY_A, created_at=START + 10, type=2, quota=77, token_name="alpha")
    for i in range(250):  # more than a page within one second
        store.insert(KEY_A, created_at=START + 500, type=2, quota=i, token_name="alpha")
    with GatewayServer(store, users=users()) as srv:
        result = fetch_period(settings(srv.url), PERIOD)
    assert got(result.logs) == month(store)
    assert len(result.logs) == 252


def test_rows_inserted_while_self_is_read_are_never_counted_twice() -> None:
    store = two_tokens(900)
    existing = month(store)
    with GatewayServer(store, Faults(insert_every=5, seed=3), users=users()) as srv:
        result = fetch_period(settings(srv.url), PERIOD)
        assert srv.inserted
    read, final = got(result.logs), month(store)
    assert not existing - read  # every log there from the start was read
    assert not read - final  # nothing read twice or invented


def test_a_gateway_sum_that_differs_from_the_rows_is_a_warning() -> None:
    store = two_tokens()
    with GatewayServer(store, users=users(stat_offset=-500)) as srv:
        result = fetch_period(settings(srv.url), PERIOD)
    rows = int(result.logs.loc[result.logs["type"] == 2, "quota"].sum())
    assert result.gateway_stat_quota == rows - 500
    assert len(result.warnings) == 1
    assert "/api/log/self/stat" in result.warnings[0]


def test_admin_reads_every_users_logs_with_real_ids() -> None:
    store = two_tokens()
    with GatewayServer(store, users=users()) as srv:
        result = fetch_period(
            settings(srv.url, access_token=SecretStr(ADMIN), user_id=1, source="admin"), PERIOD
        )
    assert (result.source, result.id_scheme) == ("admin", "stable")
    assert set(result.logs["id"]) == store.ids(KEY_A, START, END - 1) | store.ids(
        KEY_B, START, END - 1
    )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"access_token": SecretStr("accesstoken-wrong-0000000000")}, "RECONCILE_ACCESS_TOKEN"),
        ({"user_id": 8}, "RECONCILE_USER_ID: .*does not belong"),
        ({"source": "admin"}, "not an administrator's.*--source self"),
    ],
)
def test_refused_credentials_name_the_setting_never_the_secret(
    change: dict[str, Any], match: str
) -> None:
    with GatewayServer(two_tokens(50), users=users()) as srv:
        with pytest.raises(CredentialsRejected, match=match) as err:
            fetch_period(settings(srv.url, **change), PERIOD)
        assert srv.requests == 1  # not retried
    assert TOKEN not in str(err.value)
    assert "accesstoken-wrong" not in str(err.value)


def test_missing_user_id_is_a_configuration_error() -> None:
    with pytest.raises(InputError, match="RECONCILE_USER_ID"):
        fetch_period(settings("http://127.0.0.1:9", user_id=None, source="self"), PERIOD)


def test_the_2026_unpaged_list_that_cannot_cover_the_period_says_how_to_read_it() -> None:
    store = LogStore()
    fill(store, 1500)
    with GatewayServer(store, legacy_list=True, recent_limit=1000) as srv:
        s = Settings(base_url=srv.url, api_keys=SecretStr(KEY_A))
        with pytest.raises(GatewayError, match=r"newest 1000 logs.*generate an access token"):
            fetch_period(s, PERIOD)


def test_the_2026_unpaged_list_hands_over_to_self_when_an_access_token_is_set() -> None:
    store = two_tokens(1500)
    with GatewayServer(store, legacy_list=True, recent_limit=1000, users=users()) as srv:
        result = fetch_period(settings(srv.url, api_keys=SecretStr(KEY_A)), PERIOD)
    assert result.source == "self"
    assert got(result.logs) == month(store)


def test_the_2026_unpaged_list_is_used_when_it_covers_the_period() -> None:
    store = LogStore()
    fill(store, 40, lo=START - 86400, hi=START - 1)
    fill(store, 300, seed=4)
    with GatewayServer(store, legacy_list=True, recent_limit=1000) as srv:
        result = fetch_period(Settings(base_url=srv.url, api_keys=SecretStr(KEY_A)), PERIOD)
    assert result.id_scheme == "position"
    assert got(result.logs) == month(store, (KEY_A,))


def test_a_user_with_only_an_access_token_fetches_a_month_through_the_cli(
    tmp_path: Path,
) -> None:
    store = two_tokens()
    faults = Faults(status_429_every=9, retry_after=0.01, status_500_every=13)
    with GatewayServer(store, faults, users=users()) as srv:
        env = {
            "RECONCILE_BASE_URL": srv.url,
            "RECONCILE_ACCESS_TOKEN": TOKEN,
            "RECONCILE_USER_ID": str(USER_ID),
        }
        ran = run_cli(
            "fetch",
            "--period",
            "2026-10",
            "--tz",
            "Asia/Shanghai",
            "--out",
            tmp_path / "o",
            env=env,
            cwd=tmp_path,
        )
    assert ran.code == 0, ran.stderr
    assert TOKEN not in ran.stdout + ran.stderr
    back = read_snapshot(tmp_path / "o")
    assert (back.source, back.id_scheme) == ("self", "position")
    assert got(back.logs) == month(store)
    manifest = json.loads((tmp_path / "o" / "snapshot" / "manifest.json").read_text())
    assert manifest["source"] == "self"


def test_admin_with_usernames_reads_only_those_users() -> None:
    store = LogStore()
    fill(store, 200, keys=(KEY_A,), username="ann")
    fill(store, 100, keys=(KEY_B,), username="bob", seed=2)
    with GatewayServer(store, users=users()) as srv:
        s = settings(srv.url, access_token=SecretStr(ADMIN), user_id=1, source="admin")
        result = fetch_period(s.model_copy(update={"usernames": "bob"}), PERIOD)
    assert set(result.logs["id"]) == store.ids(KEY_B, START, END - 1)
    assert set(result.logs["key_ref"]) == {"user-1:bob"}


def test_the_cli_names_the_setting_for_a_forced_source_or_a_wrong_user_id(
    tmp_path: Path,
) -> None:
    with GatewayServer(two_tokens(50), users=users()) as srv:
        no_token = run_cli(
            "fetch",
            "--period",
            "2026-10",
            "--source",
            "self",
            env={"RECONCILE_BASE_URL": srv.url, "RECONCILE_API_KEYS": KEY_A},
            cwd=tmp_path,
        )
        wrong_user = run_cli(
            "fetch",
            "--period",
            "2026-10",
            env={
                "RECONCILE_BASE_URL": srv.url,
                "RECONCILE_ACCESS_TOKEN": TOKEN,
                "RECONCILE_USER_ID": "8",
            },
            cwd=tmp_path,
        )
    assert no_token.code == 2
    assert "RECONCILE_ACCESS_TOKEN" in no_token.stderr
    assert wrong_user.code == 3
    assert wrong_user.stderr.count("\n") == 1
    assert "RECONCILE_USER_ID" in wrong_user.stderr
    assert TOKEN not in wrong_user.stderr


def test_a_log_dsn_selects_the_database_source(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from reconcile.sources.choose import choose_source

    class DatabaseSource:
        name = "database"

        def __init__(self, settings: Settings) -> None:
            self.settings = settings

    module = types.ModuleType("reconcile.sources.database")
    module.DatabaseSource = DatabaseSource  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "reconcile.sources.database", module)
    chosen = choose_source(Settings(log_dsn=SecretStr("sqlite:///x.db"), api_keys=SecretStr(KEY_A)))
    assert isinstance(chosen, DatabaseSource)
    forced = choose_source(Settings(source="database"))
    assert isinstance(forced, DatabaseSource)
