"""The database source against real databases: a SQLite file and a PostgreSQL server, both
holding new-api's `tokens` and `logs` tables as GORM creates them."""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from conftest import Gateway
from database_helpers import (
    LOG_COLUMNS,
    SQLITE_DDL,
    MyServer,
    PgServer,
    Tables,
    demo_items,
    insert_sql,
    make_sqlite,
    tables_from_items,
)
from pydantic import SecretStr

from reconcile.core.period import Period, parse_period
from reconcile.core.schema import LOG_DTYPES
from reconcile.demo import run as demo
from reconcile.errors import GatewayError, InputError
from reconcile.settings import ApiKey, Settings
from reconcile.sources import database
from reconcile.sources.database import DatabaseSource
from reconcile.sources.dbconn import MysqlLogs, PostgresLogs, SqliteLogs
from reconcile.sources.dsn import parse_dsn
from reconcile.sources.fetch_into import fetch_into
from reconcile.sources.snapshot import open_snapshot, write_snapshot
from reconcile.sources.token import fetch_logs

PERIOD = parse_period(demo.PERIOD, None, None, demo.TIMEZONE)
STRANGER_KEY = "sk-strangerStrangerStranger0000000000000000000000"
_names = itertools.count()


def _tables() -> Tables:
    """The demo's logs, plus another user's token and logs inside the period that no
    scope but `*` may read."""
    items = demo_items(demo.FILES.logs)
    start = PERIOD.start_ts
    for i in range(5):
        items.append(
            {
                "key": STRANGER_KEY,
                "id": 990_000 + i,
                "created_at": start + 3600 * (i + 1),
                "type": 2,
                "username": "mallory",
                "token_name": "prod-chatbot",  # the same name as one of alice's tokens
                "model_name": "gpt-4o",
                "quota": 1000,
                "other": "{}",
            }
        )
    return tables_from_items(items, {})


Backend = Callable[[Tables | None], str]


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Makes a database holding the given tables; returns its RECONCILE_LOG_DSN."""
    if request.param == "sqlite":
        return lambda tables: f"sqlite://{make_sqlite(tmp_path / f'{next(_names)}.db', tables)}"
    server: PgServer | MyServer = request.getfixturevalue(
        "postgres" if request.param == "postgresql" else "mysql"
    )
    return lambda tables: server.create_database(f"newapi{next(_names)}", tables)


def _settings(dsn: str, **kw: Any) -> Settings:
    return Settings(log_dsn=SecretStr(dsn), timezone=demo.TIMEZONE, **kw)


def _keys(keys: list[str]) -> SecretStr:
    return SecretStr(",".join(keys))


def test_reads_exactly_what_the_http_source_reads(backend: Backend, demo_gateway: Gateway) -> None:
    dsn = backend(_tables())
    keys = _keys(demo_gateway.keys)
    http = fetch_logs(
        Settings(base_url=demo_gateway.url, api_keys=keys), PERIOD, Settings(api_keys=keys).keys()
    )
    got = DatabaseSource(_settings(dsn, api_keys=keys)).fetch(PERIOD)

    pd.testing.assert_frame_equal(got.logs, http.logs)
    assert dict(got.logs.dtypes.astype(str)) == {**LOG_DTYPES, "row_key": "string"}
    assert got.key_refs == http.key_refs
    assert got.other_types == http.other_types
    assert (got.source, got.id_scheme) == ("database", "stable")
    assert 990_000 not in set(got.logs["id"])  # the stranger's logs stay out
    # one window per day and key, each proven: counted == read
    assert {w.start for w in got.windows} == {PERIOD.start_ts + 86400 * d for d in range(31)}
    assert all(w.total == w.ids for w in got.windows)
    assert sum(w.ids for w in got.windows) == len(got.logs)
    assert "pg-Secret" not in got.base_url
    assert "reconcile@" not in got.base_url


def test_small_chunks_give_the_same_frame(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = backend(_tables())
    keys = _keys(demo.demo_keys())
    whole = DatabaseSource(_settings(dsn, api_keys=keys)).fetch(PERIOD)
    monkeypatch.setattr(database, "CHUNK_ROWS", 7)
    chunked = DatabaseSource(_settings(dsn, api_keys=keys)).fetch(PERIOD)
    pd.testing.assert_frame_equal(chunked.logs, whole.logs)
    assert sum(w.pages for w in chunked.windows) > sum(w.pages for w in whole.windows)


def test_scope_by_token_name_and_user(backend: Backend) -> None:
    tables = _tables()
    dsn = backend(tables)
    by_name = DatabaseSource(_settings(dsn, token_names="prod-chatbot")).fetch(PERIOD)
    assert set(by_name.logs["token_name"]) == {"prod-chatbot"}
    assert set(by_name.logs["key_ref"]) == {"token:prod-chatbot"}
    assert by_name.key_refs == ["token:prod-chatbot"]
    assert {"alice", "mallory"} <= set(by_name.logs["username"])  # a name spans users

    alice = next(row[1] for row in tables.logs if row[5] == "alice")
    mine = DatabaseSource(_settings(dsn, token_names="prod-chatbot", user_id=alice)).fetch(PERIOD)
    assert set(mine.logs["username"]) == {"alice"}
    assert len(mine.logs) == len(by_name.logs) - 5

    user = DatabaseSource(_settings(dsn, user_id=alice)).fetch(PERIOD)
    assert set(user.logs["username"]) == {"alice"}
    assert set(user.logs["key_ref"]) == {f"user-{alice}"}
    assert set(mine.logs["id"]) < set(user.logs["id"])


def test_token_names_as_mysql_compares_them(mysql: MyServer) -> None:
    """MySQL's default collation matches names ignoring case, as new-api's own token_name
    filter then does; the rows are tagged with the name as configured."""
    dsn = mysql.create_database(f"names{next(_names)}", _tables())
    exact = DatabaseSource(_settings(dsn, token_names="prod-chatbot,batch-analytics")).fetch(PERIOD)
    loose = DatabaseSource(_settings(dsn, token_names="PROD-chatbot,batch-analytics")).fetch(PERIOD)
    assert len(loose.logs) == len(exact.logs)
    assert set(loose.logs["key_ref"]) <= {"token:PROD-chatbot", "token:batch-analytics"}
    assert "token:PROD-chatbot" in set(loose.logs["key_ref"])


def test_star_reads_every_log_and_no_scope_is_refused(backend: Backend) -> None:
    dsn = backend(_tables())
    everything = DatabaseSource(_settings(dsn, token_names="*")).fetch(PERIOD)
    keyed = DatabaseSource(_settings(dsn, api_keys=_keys(demo.demo_keys()))).fetch(PERIOD)
    assert len(everything.logs) == len(keyed.logs) + 5
    assert everything.key_refs == ["all"]
    with pytest.raises(InputError, match="give it alone"):
        DatabaseSource(_settings(dsn, token_names="prod-chatbot,*")).fetch(PERIOD)
    with pytest.raises(InputError) as info:
        DatabaseSource(_settings(dsn)).fetch(PERIOD)
    assert info.value.exit_code == 2
    for setting in ("RECONCILE_API_KEYS", "RECONCILE_TOKEN_NAMES", "RECONCILE_USER_ID"):
        assert setting in str(info.value)


def test_an_unknown_key_is_a_configuration_error_that_hides_the_key(backend: Backend) -> None:
    dsn = backend(_tables())
    wrong = "sk-notAKeyOfThisGateway0000000000000000000000000"
    with pytest.raises(InputError) as info:
        DatabaseSource(_settings(dsn, api_keys=SecretStr(wrong))).fetch(PERIOD)
    assert ApiKey.of(wrong).ref in str(info.value)
    # a real key in the wrong case is not that key, even where the collation ignores case
    swapped = "sk-" + demo.demo_keys()[0][3:].swapcase()
    with pytest.raises(InputError, match=ApiKey.of(swapped).ref):
        DatabaseSource(_settings(dsn, api_keys=SecretStr(swapped))).fetch(PERIOD)
    assert wrong not in str(info.value)
    assert wrong[3:] not in str(info.value)


def test_missing_table_or_columns_are_exit_2(backend: Backend) -> None:
    dsn = backend(None)
    keys = _keys(demo.demo_keys())
    with pytest.raises(InputError, match="no `logs` table"):
        DatabaseSource(_settings(dsn, api_keys=keys)).fetch(PERIOD)


def test_columns_missing_from_logs_are_named(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE logs (id integer, created_at bigint, type integer)")
    with pytest.raises(InputError, match="lacks columns channel_id, completion_tokens"):
        DatabaseSource(_settings(f"sqlite://{path}", user_id=1)).fetch(PERIOD)


def test_nulls_old_tables_and_other_types(tmp_path: Path) -> None:
    """An older table without request_id, NULLs where GORM left columns unset, and manage and
    system logs: read with the HTTP source's defaults, the others counted and left out."""
    path = tmp_path / "old.db"
    ddl = SQLITE_DDL.replace(",`request_id` varchar(64) DEFAULT ''", "")
    cols = tuple(c for c in LOG_COLUMNS if c != "request_id")
    t0 = PERIOD.start_ts
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(ddl)
        conn.execute("INSERT INTO logs (id, user_id, created_at, type) VALUES (1, 7, ?, 2)", [t0])
        conn.execute("INSERT INTO logs (id, user_id, created_at, type) VALUES (2, 7, ?, 3)", [t0])
        conn.execute("INSERT INTO logs (id, user_id, created_at, type) VALUES (3, 7, ?, 4)", [t0])
        row = (4, 7, t0 + 5, 1, "充值", "bob", "", "", 500000, 0, 0, 0, 1, 0, 0, "", "", "{}")
        conn.execute(insert_sql("logs", cols, "?"), row)
        conn.commit()
    got = DatabaseSource(_settings(f"sqlite://{path}", user_id=7)).fetch(PERIOD)
    assert got.other_types == 2
    assert list(got.logs["id"]) == [1, 4]
    first = got.logs.iloc[0]
    assert (first["quota"], first["content"], first["other"], first["request_id"]) == (
        0,
        "",
        "",
        "",
    )
    assert not first["is_stream"]
    assert got.logs.iloc[1]["is_stream"]
    assert got.windows[0].total == got.windows[0].ids == 4  # counted with the other types


def test_sqlite_file_is_never_written(tmp_path: Path) -> None:
    path = make_sqlite(tmp_path / "one-api.db", _tables())
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    DatabaseSource(_settings(f"sqlite://{path}", token_names="*")).fetch(PERIOD)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one-api.db"]  # no journal, no wal
    db = SqliteLogs(parse_dsn(f"sqlite://{path}"))
    with pytest.raises(GatewayError, match="readonly"):
        db.query("DELETE FROM logs", [])


def test_postgres_session_is_read_only(postgres: PgServer) -> None:
    db = PostgresLogs(parse_dsn(postgres.create_database("readonly", _tables())))
    try:
        with pytest.raises(GatewayError, match="read-only transaction"):
            db.query("DELETE FROM logs", [])
    finally:
        db.close()


def test_mysql_session_is_read_only(mysql: MyServer) -> None:
    db = MysqlLogs(parse_dsn(mysql.create_database("readonly", _tables())))
    try:
        with pytest.raises(GatewayError, match="READ ONLY"):
            db.query("DELETE FROM logs", [])
        with db.snapshot(), pytest.raises(GatewayError, match="READ ONLY"):
            db.query("DELETE FROM logs", [])
    finally:
        db.close()


def test_unreachable_mysql_is_exit_3() -> None:
    dsn = f"newapi:s3cret-pw@tcp(127.0.0.1:{_closed_port()})/newapi"
    with pytest.raises(GatewayError) as info:
        DatabaseSource(_settings(dsn, user_id=1)).fetch(PERIOD)
    assert "cannot connect" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_postgres_wrong_password_is_exit_2_and_never_shown(postgres: PgServer) -> None:
    postgres.create_database("pw", _tables())
    wrong = "Wr0ng-Pa55w0rd-%40x"
    with pytest.raises(InputError) as info:
        DatabaseSource(_settings(postgres.url("pw", wrong), user_id=1)).fetch(PERIOD)
    text = str(info.value)
    assert "password authentication failed" in text
    assert f"postgresql://127.0.0.1:{postgres.port}/pw" in text
    for secret in (wrong, "Wr0ng-Pa55w0rd-@x", postgres.password):
        assert secret not in text


def test_unreachable_server_is_exit_3(postgres: PgServer) -> None:
    dsn = f"postgresql://u:s3cret-pw@127.0.0.1:{_closed_port()}/x"
    with pytest.raises(GatewayError) as info:
        DatabaseSource(_settings(dsn, user_id=1)).fetch(PERIOD)
    assert info.value.exit_code == 3
    assert "cannot connect" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_a_window_whose_count_never_matches_is_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_sqlite(tmp_path / "one-api.db", _tables())
    real = SqliteLogs.query

    def overcount(self: SqliteLogs, sql: str, params: Any) -> list[Any]:
        rows = real(self, sql, params)
        return [(v, n + 1) for v, n in rows] if "count(*)" in sql else rows

    monkeypatch.setattr(SqliteLogs, "query", overcount)
    with pytest.raises(GatewayError, match="3 times"):
        DatabaseSource(_settings(f"sqlite://{path}", token_names="*")).fetch(PERIOD)


def test_a_period_not_over_stops_a_minute_ago(tmp_path: Path) -> None:
    import time

    now = int(time.time())
    utc = ZoneInfo("UTC")
    period = Period(
        datetime.fromtimestamp(now - 7200, utc), datetime.fromtimestamp(now + 7200, utc), "now"
    )
    path = tmp_path / "live.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(SQLITE_DDL)
        for i, ts in enumerate([now - 3600, now - 5, now + 10]):
            conn.execute(
                "INSERT INTO logs (id, user_id, created_at, type) VALUES (?, 1, ?, 2)", [i, ts]
            )
        conn.commit()
    got = DatabaseSource(_settings(f"sqlite://{path}", user_id=1)).fetch(period)
    assert list(got.logs["id"]) == [0]


def _closed_port() -> int:
    import socket

    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sqlite_reads_each_day_through_the_created_at_index(tmp_path: Path) -> None:
    """Without statistics SQLite preferred the token_id index, so every day's query scanned all
    of the token's rows (a month: 31 full scans). The scope columns are kept off the index."""
    path = make_sqlite(tmp_path / "one-api.db", _tables())
    key = demo.demo_keys()[0]
    source = DatabaseSource(_settings(f"sqlite://{path}", api_keys=SecretStr(key)))
    plans: list[str] = []
    real = SqliteLogs.stream

    def explain(self: SqliteLogs, sql: str, params: Any, size: int) -> Any:
        plans.extend(str(r[-1]) for r in self.query(f"EXPLAIN QUERY PLAN {sql}", params))
        return real(self, sql, params, size)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SqliteLogs, "stream", explain)
        source.fetch(PERIOD)
    assert plans
    assert all("idx_logs_token_id" not in p for p in plans)
    assert any("idx_created_at_type" in p for p in plans)


@pytest.mark.parametrize("server", ["postgres", "mysql"])
def test_a_log_written_during_the_read_is_not_half_seen(
    request: pytest.FixtureRequest, server: str
) -> None:
    """The gateway keeps writing while a day is read: its count and its rows come from one
    snapshot, so a log inserted between them is neither counted nor read (it belongs to a
    later run), and no day has to be read twice."""
    live: PgServer | MyServer = request.getfixturevalue(server)
    name = f"live{next(_names)}"
    dsn = live.create_database(name, _tables())
    cls = PostgresLogs if server == "postgres" else MysqlLogs
    real = cls.stream
    inserted: list[int] = []

    def insert_then_stream(self: Any, sql: str, params: Any, size: int) -> Any:
        start = int(params[0])
        if not inserted and start == PERIOD.start_ts:  # after the day was counted
            _insert_log(live, name, 999_999, start + 10)
            inserted.append(999_999)
        return real(self, sql, params, size)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cls, "stream", insert_then_stream)
        got = DatabaseSource(_settings(dsn, token_names="*")).fetch(PERIOD)
    assert inserted
    assert 999_999 not in set(got.logs["id"])
    assert all(w.attempts == 1 and w.total == w.ids for w in got.windows)
    again = DatabaseSource(_settings(dsn, token_names="*")).fetch(PERIOD)
    assert 999_999 in set(again.logs["id"])


def _insert_log(server: PgServer | MyServer, database: str, log_id: int, ts: int) -> None:
    """One consume log written through a connection of its own, committed at once."""
    sql = "INSERT INTO logs (id, user_id, created_at, type, quota) VALUES (%s, 1, %s, 2, 7)"
    if isinstance(server, PgServer):
        import psycopg

        with psycopg.connect(server.url(database), autocommit=True) as conn:
            conn.execute(sql, [log_id, ts])
    else:
        import pymysql

        conn = pymysql.connect(
            host=server.host, port=server.port, user="root", database=database, autocommit=True
        )
        try:
            with conn.cursor() as cur:
                cur.execute(sql, [log_id, ts])
        finally:
            conn.close()


def test_an_empty_period_and_the_progress_hook(tmp_path: Path) -> None:
    path = make_sqlite(tmp_path / "one-api.db", _tables())
    seen: list[Any] = []
    source = DatabaseSource(_settings(f"sqlite://{path}", token_names="*"))
    august = parse_period("2026-08", None, None, demo.TIMEZONE)
    empty = source.fetch(august, seen.append)
    assert len(empty.logs) == 0
    assert dict(empty.logs.dtypes.astype(str)) == {**LOG_DTYPES, "row_key": "string"}
    assert len(empty.windows) == 31
    assert all(w.total == w.ids == 0 for w in empty.windows)

    seen.clear()
    october = source.fetch(PERIOD, seen.append)
    last = seen[-1]
    assert (last.windows_done, last.windows_total) == (31, 31)
    assert (last.keys_done, last.keys_total) == (1, 1)
    assert last.logs == len(october.logs) + october.other_types


def test_values_sqlite_stores_with_other_types(tmp_path: Path) -> None:
    """SQLite keeps whatever it is given: text in number columns, bytes in text columns (not
    always UTF-8), a float where an integer belongs. Read as the numbers and text they are;
    a number that is not whole is an error naming the column, never truncated."""
    path = tmp_path / "odd.db"
    t0 = PERIOD.start_ts
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(SQLITE_DDL)
        conn.execute(
            "INSERT INTO logs (id, user_id, created_at, type, quota, content, other, is_stream) "
            "VALUES (1, 1, ?, 2, '1200', ?, ?, 'true')",
            [t0, b"caf\xc3\xa9", b"\xff{}"],
        )
        conn.execute(
            "INSERT INTO logs (id, user_id, created_at, type, quota) VALUES (2, 1, ?, 2, 7.0)",
            [t0 + 1],
        )
        conn.commit()
    got = DatabaseSource(_settings(f"sqlite://{path}", user_id=1)).fetch(PERIOD)
    assert list(got.logs["quota"]) == [1200, 7]
    assert got.logs["content"][0] == "café"
    assert got.logs["other"][0] == "\ufffd{}"
    assert list(got.logs["is_stream"]) == [True, False]

    with closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE logs SET quota = 2.5 WHERE id = 2")
        conn.commit()
    with pytest.raises(GatewayError, match=r"`quota` is not an integer: 2\.5"):
        DatabaseSource(_settings(f"sqlite://{path}", user_id=1)).fetch(PERIOD)


def test_fetch_into_streams_days_into_the_same_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streamed a day at a time into the writer, the database's logs make byte for byte the
    snapshot that the month read whole and then written makes; each day is written as soon as
    it is read, before the next day is read."""
    path = make_sqlite(tmp_path / "one-api.db", _tables())
    source = DatabaseSource(_settings(f"sqlite://{path}", api_keys=_keys(demo.demo_keys())))
    whole = source.fetch(PERIOD)
    write_snapshot(whole, tmp_path / "whole")

    written_before_read: list[int] = []
    read_window = database._Reader.window

    def window(reader: Any, start: int, end: int) -> None:
        written_before_read.append(len(list((tmp_path / "streamed").glob("logs-*.parquet"))))
        read_window(reader, start, end)

    monkeypatch.setattr(database._Reader, "window", window)
    store = fetch_into(source, PERIOD, tmp_path / "streamed")
    assert written_before_read == list(range(31))  # day d read after days 0..d-1 were written
    assert (len(store), store.days) == (len(whole.logs), 31)
    assert len(store.meta.logs) == 0
    a = json.loads((tmp_path / "streamed/manifest.json").read_text())
    b = json.loads((tmp_path / "whole/manifest.json").read_text())
    for name in ("fetched_at", "content_sha256"):
        a.pop(name), b.pop(name)
    assert a == b
    for f in b["files"]:
        assert (tmp_path / "streamed" / f["name"]).read_bytes() == (
            tmp_path / "whole" / f["name"]
        ).read_bytes()


def test_fetch_into_a_failed_read_leaves_no_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day that cannot be proven complete, after earlier days were written: no manifest,
    so nothing a run would open as a snapshot."""
    path = make_sqlite(tmp_path / "one-api.db", _tables())
    real = SqliteLogs.query
    late = PERIOD.start_ts + 20 * 86400

    def overcount(self: SqliteLogs, sql: str, params: Any) -> list[Any]:
        rows = real(self, sql, params)
        wrong = "count(*)" in sql and params[0] >= late
        return [(v, n + 1) for v, n in rows] if wrong else rows

    monkeypatch.setattr(SqliteLogs, "query", overcount)
    with pytest.raises(GatewayError, match="3 times"):
        fetch_into(
            DatabaseSource(_settings(f"sqlite://{path}", token_names="*")), PERIOD, tmp_path / "s"
        )
    assert len(list((tmp_path / "s").glob("logs-*.parquet"))) == 20
    with pytest.raises(InputError, match="no snapshot here"):
        open_snapshot(tmp_path / "s")
