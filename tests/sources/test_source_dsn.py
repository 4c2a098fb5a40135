"""RECONCILE_LOG_DSN: every form an operator may paste, read right, and never echoed."""

from __future__ import annotations

import pytest

from reconcile.errors import InputError
from reconcile.sources.dsn import parse_dsn


@pytest.mark.parametrize(
    ("text", "path", "display"),
    [
        ("sqlite:///data/one-api.db", "/data/one-api.db", "sqlite:///data/one-api.db"),
        ("sqlite:one-api.db", "one-api.db", "sqlite:one-api.db"),
        ("sqlite://one-api.db?_busy_timeout=30000", "one-api.db", "sqlite:one-api.db"),
        ("  sqlite:///a%20b/x.db ", "/a b/x.db", "sqlite:///a b/x.db"),
    ],
)
def test_sqlite_forms(text: str, path: str, display: str) -> None:
    dsn = parse_dsn(text)
    assert (dsn.kind, dsn.path, dsn.display) == ("sqlite", path, display)


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_postgres_url_is_shown_without_user_or_password(scheme: str) -> None:
    dsn = parse_dsn(f"{scheme}://admin:p%40ss%2Fw0rd@db.internal:6543/newapi?sslmode=require")
    assert dsn.kind == "postgresql"
    assert dsn.display == "postgresql://db.internal:6543/newapi"
    assert (dsn.user, dsn.password, dsn.port) == ("admin", "p@ss/w0rd", 6543)
    echoed = 'FATAL: password "p@ss/w0rd" (p%40ss%2Fw0rd) for admin:p%40ss%2Fw0rd@db.internal'
    scrubbed = dsn.scrub(echoed)
    assert "p@ss/w0rd" not in scrubbed
    assert "p%40ss%2Fw0rd" not in scrubbed


@pytest.mark.parametrize(
    ("text", "host", "port", "db", "user", "password"),
    [
        ("mysql://root:pw@10.0.0.5:3307/newapi", "10.0.0.5", 3307, "newapi", "root", "pw"),
        # new-api's own SQL_DSN (go-sql-driver), a password holding '@' and ':'
        (
            "root:p@ss:1@tcp(mysql:3306)/new-api?charset=utf8mb4&parseTime=True",
            "mysql",
            3306,
            "new-api",
            "root",
            "p@ss:1",
        ),
        ("user@tcp(localhost)/logs", "localhost", 3306, "logs", "user", ""),
    ],
)
def test_mysql_forms(text: str, host: str, port: int, db: str, user: str, password: str) -> None:
    dsn = parse_dsn(text)
    assert (dsn.kind, dsn.host, dsn.port, dsn.database) == ("mysql", host, port, db)
    assert (dsn.user, dsn.password) == (user, password)
    assert dsn.display == f"mysql://{host}:{port}/{db}"


def test_mysql_unix_socket() -> None:
    dsn = parse_dsn("root:pw@unix(/run/mysqld/mysqld.sock)/newapi")
    assert dsn.unix_socket == "/run/mysqld/mysqld.sock"
    assert dsn.display == "mysql://unix(/run/mysqld/mysqld.sock)/newapi"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("local", "sqlite:///"),
        ("clickhouse://u:topsecret@ch:9000/logs", "ClickHouse"),
        ("https://u:topsecret@ch:8443/logs", "ClickHouse"),
        ("host=db user=u password=topsecret", "not a database address"),
        ("postgresql://u:topsecret@db:port/x", "port is not a number"),
        ("sqlite://", "no database file"),
        ("mysql://u:topsecret@db:3306/", "no database name"),
        ("", "empty"),
    ],
)
def test_bad_dsns_say_what_to_write_and_never_echo_it(text: str, says: str) -> None:
    with pytest.raises(InputError) as info:
        parse_dsn(text)
    message = str(info.value)
    assert says in message
    assert message.startswith("RECONCILE_LOG_DSN: ")
    assert "topsecret" not in message
    assert info.value.exit_code == 2
