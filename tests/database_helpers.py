"""Real databases for the database source's tests: new-api's tables in SQLite, PostgreSQL and
MySQL (MariaDB).

The DDL is written from new-api's GORM structs (model/log.go `Log`, model/token.go `Token`)
as GORM's SQLite and PostgreSQL dialects create them: the column names and types a real
gateway's database has. `PgServer` runs a throwaway PostgreSQL server (Debian's `postgresql`
package: initdb + pg_ctl) on 127.0.0.1 with a password, in a temporary directory;
`mysql_server` runs Debian's mariadbd the same way.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SQLITE_DDL = """
CREATE TABLE `tokens` (`id` integer PRIMARY KEY AUTOINCREMENT,`user_id` integer,
  `key` varchar(128),`status` integer DEFAULT 1,`name` text,`created_time` bigint,
  `accessed_time` bigint,`expired_time` bigint DEFAULT -1,`remain_quota` integer DEFAULT 0,
  `unlimited_quota` numeric,`model_limits_enabled` numeric,`model_limits` text,
  `allow_ips` text DEFAULT '',`used_quota` integer DEFAULT 0,`group` text DEFAULT '',
  `deleted_at` datetime);
CREATE UNIQUE INDEX `idx_tokens_key` ON `tokens`(`key`);
CREATE TABLE `logs` (`id` integer PRIMARY KEY AUTOINCREMENT,`user_id` integer,
  `created_at` bigint,`type` integer,`content` text,`username` text DEFAULT '',
  `token_name` text DEFAULT '',`model_name` text DEFAULT '',`quota` integer DEFAULT 0,
  `prompt_tokens` integer DEFAULT 0,`completion_tokens` integer DEFAULT 0,
  `use_time` integer DEFAULT 0,`is_stream` numeric,`channel_id` integer,
  `token_id` integer DEFAULT 0,`group` text,`ip` text DEFAULT '',
  `request_id` varchar(64) DEFAULT '',`upstream_request_id` varchar(128) DEFAULT '',
  `other` text);
CREATE INDEX `idx_created_at_id` ON `logs`(`id`,`created_at`);
CREATE INDEX `idx_created_at_type` ON `logs`(`created_at`,`type`);
CREATE INDEX `idx_logs_token_id` ON `logs`(`token_id`);
CREATE INDEX `idx_logs_user_id` ON `logs`(`user_id`);
"""

POSTGRES_DDL = """
CREATE TABLE "tokens" ("id" bigserial,"user_id" bigint,"key" varchar(128),
  "status" bigint DEFAULT 1,"name" text,"created_time" bigint,"accessed_time" bigint,
  "expired_time" bigint DEFAULT -1,"remain_quota" bigint DEFAULT 0,"unlimited_quota" boolean,
  "model_limits_enabled" boolean,"model_limits" text,"allow_ips" text DEFAULT '',
  "used_quota" bigint DEFAULT 0,"group" text DEFAULT '',"deleted_at" timestamptz,
  PRIMARY KEY ("id"));
CREATE UNIQUE INDEX IF NOT EXISTS "idx_tokens_key" ON "tokens" ("key");
CREATE TABLE "logs" ("id" bigserial,"user_id" bigint,"created_at" bigint,"type" bigint,
  "content" text,"username" text DEFAULT '',"token_name" text DEFAULT '',
  "model_name" text DEFAULT '',"quota" bigint DEFAULT 0,"prompt_tokens" bigint DEFAULT 0,
  "completion_tokens" bigint DEFAULT 0,"use_time" bigint DEFAULT 0,"is_stream" boolean,
  "channel_id" bigint,"token_id" bigint DEFAULT 0,"group" text,"ip" text DEFAULT '',
  "request_id" varchar(64) DEFAULT '',"upstream_request_id" varchar(128) DEFAULT '',
  "other" text,PRIMARY KEY ("id"));
CREATE INDEX IF NOT EXISTS "idx_created_at_type" ON "logs" ("created_at","type");
CREATE INDEX IF NOT EXISTS "idx_logs_token_id" ON "logs" ("token_id");
CREATE INDEX IF NOT EXISTS "idx_logs_user_id" ON "logs" ("user_id");
"""

MYSQL_DDL = [
    """CREATE TABLE `tokens` (`id` bigint AUTO_INCREMENT,`user_id` bigint,`key` varchar(128),
  `status` bigint DEFAULT 1,`name` varchar(191),`created_time` bigint,`accessed_time` bigint,
  `expired_time` bigint DEFAULT -1,`remain_quota` bigint DEFAULT 0,`unlimited_quota` boolean,
  `model_limits_enabled` boolean,`model_limits` text,`allow_ips` varchar(191) DEFAULT '',
  `used_quota` bigint DEFAULT 0,`group` varchar(191) DEFAULT '',`deleted_at` datetime(3) NULL,
  PRIMARY KEY (`id`),UNIQUE INDEX `idx_tokens_key` (`key`)) DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE `logs` (`id` bigint AUTO_INCREMENT,`user_id` bigint,`created_at` bigint,
  `type` bigint,`content` longtext,`username` varchar(191) DEFAULT '',
  `token_name` varchar(191) DEFAULT '',`model_name` varchar(191) DEFAULT '',
  `quota` bigint DEFAULT 0,`prompt_tokens` bigint DEFAULT 0,`completion_tokens` bigint DEFAULT 0,
  `use_time` bigint DEFAULT 0,`is_stream` boolean,`channel_id` bigint,
  `token_id` bigint DEFAULT 0,`group` varchar(191),`ip` varchar(191) DEFAULT '',
  `request_id` varchar(64) DEFAULT '',`upstream_request_id` varchar(128) DEFAULT '',
  `other` longtext,PRIMARY KEY (`id`),INDEX `idx_created_at_type` (`created_at`,`type`),
  INDEX `idx_logs_token_id` (`token_id`),INDEX `idx_logs_user_id` (`user_id`))
  DEFAULT CHARSET=utf8mb4""",
]

LOG_COLUMNS = (
    "id",
    "user_id",
    "created_at",
    "type",
    "content",
    "username",
    "token_name",
    "model_name",
    "quota",
    "prompt_tokens",
    "completion_tokens",
    "use_time",
    "is_stream",
    "channel_id",
    "token_id",
    "group",
    "ip",
    "request_id",
    "other",
)
TOKEN_COLUMNS = ("id", "user_id", "key", "name")


@dataclass
class Tables:
    """Rows for new-api's `tokens` and `logs` tables, as tuples in the column orders above."""

    tokens: list[tuple[Any, ...]]
    logs: list[tuple[Any, ...]]


def tables_from_items(items: Iterable[dict[str, Any]], users: dict[str, int]) -> Tables:
    """Tokens and logs from gateway items carrying `key` (demo jsonl lines): one token per key
    (stored without `sk-`, as new-api does), each log tied to its token and its user."""
    tokens: dict[str, tuple[Any, ...]] = {}
    logs = []
    for item in items:
        key = str(item["key"])
        user = users.setdefault(str(item.get("username", "")), len(users) + 1)
        if key not in tokens:
            tokens[key] = (len(tokens) + 1, user, key.removeprefix("sk-"), item.get("token_name"))
        token_id = tokens[key][0]
        other = item.get("other")
        if isinstance(other, dict):
            other = json.dumps(other)
        logs.append(
            (
                item["id"],
                user,
                item["created_at"],
                item.get("type", 2),
                item.get("content"),
                item.get("username"),
                item.get("token_name"),
                item.get("model_name"),
                item.get("quota"),
                item.get("prompt_tokens"),
                item.get("completion_tokens"),
                item.get("use_time"),
                item.get("is_stream"),
                item.get("channel"),
                token_id,
                item.get("group"),
                "",
                item.get("request_id"),
                other,
            )
        )
    return Tables(list(tokens.values()), logs)


def demo_items(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def insert_sql(table: str, columns: tuple[str, ...], mark: str, q: str = '"') -> str:
    cols = ",".join(f"{q}{c}{q}" for c in columns)
    return f"INSERT INTO {q}{table}{q} ({cols}) VALUES ({','.join([mark] * len(columns))})"


def make_sqlite(path: Path, tables: Tables | None) -> Path:
    """A new-api SQLite database file at `path` holding `tables` (None: a database without
    new-api's tables)."""
    with closing(sqlite3.connect(path)) as conn:
        if tables is None:
            conn.execute("CREATE TABLE unrelated (id integer)")
            return path
        conn.executescript(SQLITE_DDL)
        conn.executemany(insert_sql("tokens", TOKEN_COLUMNS, "?"), tables.tokens)
        conn.executemany(insert_sql("logs", LOG_COLUMNS, "?"), tables.logs)
        conn.commit()
    return path


# --------------------------------------------------------------------------------------------
# PostgreSQL


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path | None:
    """Debian's versioned binaries (newest first), else whatever pg_ctl PATH has."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version, reverse=True)
    if found:
        return Path(found[0]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).resolve().parent if on_path else None


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


@dataclass(frozen=True)
class PgServer:
    """A running server: `url(db)` is a postgresql:// URL with the password."""

    host: str
    port: int
    user: str
    password: str

    def url(self, database: str, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{self.user}:{pw}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str, tables: Tables | None) -> str:
        """A fresh database `name` with new-api's tables holding `tables`; returns its URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        if tables is not None:
            with psycopg.connect(self.url(name)) as conn:
                conn.execute(POSTGRES_DDL)
                with conn.cursor() as cur:
                    cur.executemany(insert_sql("tokens", TOKEN_COLUMNS, "%s"), tables.tokens)
                    cur.executemany(insert_sql("logs", LOG_COLUMNS, "%s"), tables.logs)
        return self.url(name)


@contextmanager
def postgres_server() -> Iterator[PgServer]:
    """initdb + pg_ctl start in a temporary directory; stopped and removed on exit.

    initdb refuses to run as root, so as root the server runs as the `postgres` user the
    Debian package creates. The superuser has a password (scram-sha-256 over TCP), so tests
    can prove a wrong one is refused and a right one never leaks.
    """
    bindir = _pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install -y postgresql")
    root = Path(tempfile.mkdtemp(prefix="reconcile-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    password = "pg-Secret-7x9"  # a test server's password: what tests prove never leaks
    (root / "pw").write_text(password + "\n")
    if as_user:
        shutil.chown(root / "pw", "postgres")
    data, port = root / "data", _free_port()

    def run(*cmd: str) -> None:
        proc = subprocess.run(
            [*as_user, *cmd], capture_output=True, text=True, timeout=120, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    try:
        run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "reconcile",
            f"--pwfile={root / 'pw'}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
        run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "-o",
            opts,
            "start",
        )
        try:
            yield PgServer("127.0.0.1", port, "reconcile", password)
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# MySQL (MariaDB)


@dataclass(frozen=True)
class MyServer:
    """A running MariaDB server that checks no passwords (it has no grant tables)."""

    host: str
    port: int

    def url(self, database: str) -> str:
        return f"mysql://newapi:any-Pass-42@{self.host}:{self.port}/{database}"

    def create_database(self, name: str, tables: Tables | None) -> str:
        import pymysql

        conn = pymysql.connect(host=self.host, port=self.port, user="root", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                cur.execute(f"CREATE DATABASE `{name}` DEFAULT CHARSET utf8mb4")
                cur.execute(f"USE `{name}`")
                if tables is not None:
                    for ddl in MYSQL_DDL:
                        cur.execute(ddl)
                    tokens = insert_sql("tokens", TOKEN_COLUMNS, "%s", "`")
                    cur.executemany(tokens, tables.tokens)
                    cur.executemany(insert_sql("logs", LOG_COLUMNS, "%s", "`"), tables.logs)
        finally:
            conn.close()
        return self.url(name)


@contextmanager
def mysql_server() -> Iterator[MyServer]:
    """Debian's mariadbd (package mariadb-server-core) on 127.0.0.1 in a temporary directory,
    without grant tables: the server-core package has no scripts to create them, and the
    tests need a real server's SQL, types and cursors, not its accounts."""
    binary = shutil.which("mariadbd") or shutil.which("mysqld")
    for candidate in ("/usr/sbin/mariadbd", "/usr/sbin/mysqld"):
        if binary is None and os.path.exists(candidate):
            binary = candidate
    if binary is None:
        raise RuntimeError("MariaDB is not installed: apt-get install -y mariadb-server-core")
    root = Path(tempfile.mkdtemp(prefix="reconcile-my-"))
    (root / "data").mkdir()
    port = _free_port()
    cmd = [
        binary,
        "--no-defaults",
        f"--datadir={root / 'data'}",
        f"--socket={root / 'sock'}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        "--skip-grant-tables",
        "--skip-log-bin",
        "--innodb-buffer-pool-size=32M",
        f"--log-error={root / 'err.log'}",
    ]
    if os.geteuid() == 0:
        cmd.append("--user=root")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if proc.poll() is not None:
                log = (root / "err.log").read_text(errors="replace")[-500:]
                raise RuntimeError(f"mariadbd exited: {log}")
            with closing(socket.socket()) as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError("mariadbd did not start listening within 10 s")
        yield MyServer("127.0.0.1", port)
    finally:
        proc.kill()  # a throwaway server: nothing to flush, and a clean shutdown takes seconds
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)
