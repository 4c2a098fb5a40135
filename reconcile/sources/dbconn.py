"""Read-only connections to a gateway's database: SQLite (stdlib), PostgreSQL (psycopg) and
MySQL / MariaDB (PyMySQL).

Each connection can do four things, which is all the database source needs: list a table's
columns, run a small query, hold a consistent read-only snapshot for the length of one time
window, and stream a large result in chunks through a server-side cursor, so memory follows
the chunk, never the table. Driver errors leave this module as one line, scrubbed of the
password: InputError (exit 2) when the setting is wrong (no such file, database or user, bad
password), GatewayError (exit 3) when the database could not be read (unreachable, a query
failed part-way).

Read-only, twice over. SQLite is opened with `mode=ro` and `query_only`; PostgreSQL and MySQL
sessions are READ ONLY transactions at REPEATABLE READ (MySQL: WITH CONSISTENT SNAPSHOT), so
a window's count and its rows come from one snapshot even while the gateway keeps writing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from reconcile.errors import GatewayError, InputError
from reconcile.sources.dsn import FIELD, Dsn

Row = tuple[Any, ...]

#: libpq's words for a setting that is wrong rather than a server that is unreachable.
_PG_CONFIG_ERRORS = (
    "password authentication failed",
    "no password supplied",
    "does not exist",
    "authentication failed",
    "invalid dsn",
    "invalid connection option",
    "invalid uri",
    "invalid percent-encoded",
    "invalid integer value",
)


class LogDatabase:
    """A connection to the gateway's database (abstract: one subclass per kind)."""

    param = "?"  # the driver's placeholder
    false = "0"  # the literal for false (is_stream of a NULL)

    def __init__(self, dsn: Dsn) -> None:
        self.dsn = dsn

    def quote(self, name: str) -> str:
        return f'"{name}"'

    def unindexed(self, column: str) -> str:
        """`column` in a WHERE clause that must not pick the index (see SqliteLogs)."""
        return self.quote(column)

    def columns(self, table: str) -> set[str]:
        """The table's column names, lowercased; empty when there is no such table."""
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any]) -> list[Row]:
        raise NotImplementedError

    def snapshot(self) -> Any:
        """Context manager: one consistent, read-only view for the statements inside it."""
        raise NotImplementedError

    def stream(self, sql: str, params: Sequence[Any], size: int) -> Iterator[list[Row]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def failed(self, what: str, exc: BaseException) -> GatewayError:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return GatewayError(f"log database {self.dsn.display}: {what}: {self.dsn.scrub(detail)}")


def connect(dsn: Dsn) -> LogDatabase:
    """Open `dsn` read-only."""
    if dsn.kind == "sqlite":
        return SqliteLogs(dsn)
    if dsn.kind == "postgresql":
        return PostgresLogs(dsn)
    return MysqlLogs(dsn)


class SqliteLogs(LogDatabase):
    def __init__(self, dsn: Dsn) -> None:
        super().__init__(dsn)
        path = Path(dsn.path).expanduser()
        if not path.is_file():
            raise InputError(f"{dsn.display}: no such database file", field=FIELD)
        uri = "file:" + quote(str(path.resolve())) + "?mode=ro"
        try:
            self._conn = sqlite3.connect(
                uri, uri=True, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA query_only = ON")
            self._conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        except sqlite3.DatabaseError as exc:
            raise InputError(
                f"{dsn.display}: not a readable SQLite database ({exc})", field=FIELD
            ) from None

    def unindexed(self, column: str) -> str:
        """SQLite's planner has no statistics in a database nobody ran ANALYZE on, and picks
        the token_id (or user_id) index over created_at's: then every day's query scans all
        of the token's rows (measured: 85 ms per day for 100,000 logs, growing with the
        table). A unary + keeps it on the created_at index."""
        return f"+{self.quote(column)}"

    def columns(self, table: str) -> set[str]:
        rows = self.query("SELECT name FROM pragma_table_info(?)", [table])
        return {str(r[0]).lower() for r in rows}

    def query(self, sql: str, params: Sequence[Any]) -> list[Row]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self.failed("a query failed", exc) from None

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("ROLLBACK")

    def stream(self, sql: str, params: Sequence[Any], size: int) -> Iterator[list[Row]]:
        try:
            cur = self._conn.execute(sql, params)
            while rows := cur.fetchmany(size):
                yield rows
        except sqlite3.Error as exc:
            raise self.failed("reading the logs failed", exc) from None

    def close(self) -> None:
        self._conn.close()


class PostgresLogs(LogDatabase):
    param = "%s"
    false = "false"

    def __init__(self, dsn: Dsn) -> None:
        super().__init__(dsn)
        import psycopg  # only a PostgreSQL read pays for importing the driver

        self._errors: type[Exception] = psycopg.Error
        try:
            self._conn = psycopg.connect(
                dsn.url, connect_timeout=15, application_name="reconcile", autocommit=False
            )
        except psycopg.Error as exc:
            low = str(exc).lower()
            if any(words in low for words in _PG_CONFIG_ERRORS):
                detail = dsn.scrub(" ".join(str(exc).split()))
                raise InputError(f"{dsn.display}: cannot log in: {detail}", field=FIELD) from None
            raise self.failed("cannot connect", exc) from None
        self._conn.read_only = True
        self._conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ

    def columns(self, table: str) -> set[str]:
        rows = self.query(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attnum > 0 AND NOT attisdropped",
            [table],
        )
        self._conn.rollback()
        return {str(r[0]).lower() for r in rows}

    def query(self, sql: str, params: Sequence[Any]) -> list[Row]:
        try:
            with self._conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        except self._errors as exc:
            raise self.failed("a query failed", exc) from None

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        try:
            yield  # the first statement starts the READ ONLY, REPEATABLE READ transaction
        finally:
            self._conn.rollback()

    def stream(self, sql: str, params: Sequence[Any], size: int) -> Iterator[list[Row]]:
        try:
            with self._conn.cursor(name="reconcile_logs", binary=True) as cur:
                cur.itersize = size
                cur.execute(sql, params)
                while rows := cur.fetchmany(size):
                    yield rows
        except self._errors as exc:
            raise self.failed("reading the logs failed", exc) from None

    def close(self) -> None:
        self._conn.close()


#: MySQL error codes meaning the setting is wrong: access denied, unknown database.
_MYSQL_CONFIG_ERRORS = {1044, 1045, 1049, 1698}


class MysqlLogs(LogDatabase):
    param = "%s"
    false = "0"

    def __init__(self, dsn: Dsn) -> None:
        super().__init__(dsn)
        import pymysql  # only a MySQL read pays for importing the driver
        import pymysql.cursors

        self._errors: type[Exception] = pymysql.Error
        self._streaming = pymysql.cursors.SSCursor
        where: dict[str, Any] = (
            {"unix_socket": dsn.unix_socket}
            if dsn.unix_socket
            else {"host": dsn.host, "port": dsn.port or 3306}
        )
        try:
            self._conn = pymysql.connect(
                **where,
                user=dsn.user or None,
                password=dsn.password,
                database=dsn.database,
                charset="utf8mb4",
                connect_timeout=15,
                autocommit=True,
            )
        except pymysql.Error as exc:
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
            if code in _MYSQL_CONFIG_ERRORS:
                detail = dsn.scrub(" ".join(str(exc.args[-1]).split()))
                raise InputError(f"{dsn.display}: cannot log in: {detail}", field=FIELD) from None
            raise self.failed("cannot connect", exc) from None
        # every transaction of this session, autocommitted statements included, is read-only
        self.query("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", [])

    def quote(self, name: str) -> str:
        return f"`{name}`"

    def columns(self, table: str) -> set[str]:
        rows = self.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = %s",
            [table],
        )
        return {str(r[0]).lower() for r in rows}

    def query(self, sql: str, params: Sequence[Any]) -> list[Row]:
        try:
            with self._conn.cursor() as cur:
                cur.execute(sql, list(params))
                return list(cur.fetchall())
        except self._errors as exc:
            raise self.failed("a query failed", exc) from None

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        self.query("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", [])
        try:
            yield
        finally:
            self.query("ROLLBACK", [])

    def stream(self, sql: str, params: Sequence[Any], size: int) -> Iterator[list[Row]]:
        try:
            with self._conn.cursor(self._streaming) as cur:  # unbuffered: rows as they come
                cur.execute(sql, list(params))
                while rows := cur.fetchmany(size):
                    yield list(rows)
        except self._errors as exc:
            raise self.failed("reading the logs failed", exc) from None

    def close(self) -> None:
        self._conn.close()
