"""RECONCILE_LOG_DSN: which database holds the gateway's logs, and how to name it safely.

Accepted forms (the URL forms, and what new-api itself takes in SQL_DSN / LOG_SQL_DSN):

    sqlite:///var/lib/new-api/one-api.db     an absolute path (sqlite:one-api.db: relative)
    postgresql://user:pass@host:5432/newapi  also postgres://; query parameters (sslmode=…)
                                             go to libpq as they are
    mysql://user:pass@host:3306/newapi       also new-api's Go form user:pass@tcp(host:3306)/db

new-api's `local` (its own SQLite file, wherever SQLITE_PATH put it) names no file we can
find, and ClickHouse log databases are not read: both are refused with what to write instead.
Go-form parameters (charset, parseTime, loc, …) are accepted and ignored: the reader sets
what it needs.

The password never leaves this module except to the driver: `Dsn.display` is what reports,
snapshots and errors name (scheme, host, port, database or file; no user, no password), and
`Dsn.scrub` removes the secret from any driver message that might echo it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, quote_plus, unquote, urlsplit

from pydantic import SecretStr

from reconcile.errors import InputError

Kind = Literal["sqlite", "postgresql", "mysql"]
FIELD = "RECONCILE_LOG_DSN"

#: new-api's MySQL form (go-sql-driver): [user[:password]@][net[(addr)]]/dbname[?params]
_GO_MYSQL = re.compile(
    r"^(?:(?P<user>[^:@/]*)(?::(?P<password>.*))?@)?"
    r"(?:(?P<net>tcp|unix)(?:\((?P<addr>[^)]*)\))?)?"
    r"/(?P<db>[^?/]*)(?:\?(?P<query>.*))?$",
    re.DOTALL,
)


@dataclass(frozen=True)
class Dsn:
    """A parsed log database address. Build it with `parse_dsn`."""

    kind: Kind
    display: str  # safe to print and store: never user or password
    path: str = ""  # sqlite: the database file
    url: str = field(default="", repr=False)  # postgresql: the URL for libpq, with secrets
    host: str = ""
    port: int | None = None
    user: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    database: str = ""
    unix_socket: str = ""  # mysql over a unix socket

    def scrub(self, text: str) -> str:
        """`text` with the password (in any encoding a driver could echo) taken out."""
        secrets = {self.url} if self.url else set()
        if self.password:
            p = self.password
            secrets |= {p, quote(p, safe=""), quote_plus(p)}
        for secret in sorted(secrets, key=len, reverse=True):
            if secret:
                text = text.replace(secret, "***")
        return text


def parse_dsn(value: SecretStr | str) -> Dsn:
    """Parse RECONCILE_LOG_DSN; InputError (exit 2) naming the setting, never echoing it."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    text = raw.strip()
    if not text:
        raise InputError("is empty", field=FIELD)
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    if text.lower().startswith("local"):
        raise InputError(
            "`local` is new-api's own SQLite file; give its path instead, e.g. "
            "sqlite:///data/one-api.db",
            field=FIELD,
        )
    if scheme == "sqlite":
        return _sqlite(text)
    if scheme in ("postgres", "postgresql"):
        return _postgresql(text)
    if scheme == "mysql":
        return _mysql_url(text)
    if scheme in ("clickhouse", "tcp", "http", "https"):
        raise InputError(
            "ClickHouse log databases are not supported; give a SQLite, PostgreSQL or MySQL "
            "database",
            field=FIELD,
        )
    match = _GO_MYSQL.match(text)
    if match is not None and ("@" in text or text.startswith("/")):
        return _mysql_go(match)
    raise InputError(
        "not a database address: expected sqlite:///path, postgresql://… or mysql://… "
        "(or new-api's user:pass@tcp(host:port)/db)",
        field=FIELD,
    )


def _sqlite(text: str) -> Dsn:
    rest = text.split(":", 1)[1]
    if rest.startswith("//"):
        rest = rest[2:]  # sqlite:///abs/path -> /abs/path; sqlite://rel.db -> rel.db
    path = unquote(rest.split("?", 1)[0])  # new-api's SQLITE_PATH may carry ?_busy_timeout=…
    if not path:
        raise InputError("sqlite: no database file given (sqlite:///path/one-api.db)", field=FIELD)
    display = f"sqlite://{path}" if path.startswith("/") else f"sqlite:{path}"
    return Dsn(kind="sqlite", display=display, path=path, database=path)


def _postgresql(text: str) -> Dsn:
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        raise InputError("postgresql: the port is not a number", field=FIELD) from None
    host = parts.hostname or ""
    database = unquote(parts.path.lstrip("/"))
    shown_host = f"[{host}]" if ":" in host else host
    display = f"postgresql://{shown_host}" + (f":{port}" if port else "") + f"/{database}"
    return Dsn(
        kind="postgresql",
        display=display,
        url=text,
        host=host,
        port=port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=database,
    )


def _mysql_url(text: str) -> Dsn:
    parts = urlsplit(text)
    try:
        port = parts.port or 3306
    except ValueError:
        raise InputError("mysql: the port is not a number", field=FIELD) from None
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise InputError("mysql: no database name (mysql://user:pass@host:3306/db)", field=FIELD)
    host = parts.hostname or "127.0.0.1"
    return Dsn(
        kind="mysql",
        display=f"mysql://{host}:{port}/{database}",
        host=host,
        port=port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=database,
    )


def _mysql_go(match: re.Match[str]) -> Dsn:
    net, addr, database = match["net"] or "tcp", match["addr"] or "", match["db"]
    if not database:
        raise InputError("mysql: no database name (user:pass@tcp(host:3306)/db)", field=FIELD)
    user, password = match["user"] or "", match["password"] or ""
    if net == "unix":
        return Dsn(
            kind="mysql",
            display=f"mysql://unix({addr})/{database}",
            unix_socket=addr,
            user=user,
            password=password,
            database=database,
        )
    host, _, port_text = (addr or "127.0.0.1:3306").rpartition(":")
    if not host:  # no port given: "tcp(host)"
        host, port_text = port_text, "3306"
    if not port_text.isdigit():
        raise InputError("mysql: the port is not a number", field=FIELD)
    host = host.strip("[]")
    return Dsn(
        kind="mysql",
        display=f"mysql://{host}:{port_text}/{database}",
        host=host,
        port=int(port_text),
        user=user,
        password=password,
        database=database,
    )
