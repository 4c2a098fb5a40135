"""`reconcile run` pointed at the gateway's database, as an operator runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Gateway, run_cli
from database_helpers import MyServer, PgServer, demo_items, make_sqlite, tables_from_items

from reconcile.demo import run as demo

ARGS = ("--period", demo.PERIOD, "--tz", demo.TIMEZONE, "--rules", demo.FILES.rules)


def _summary(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return data


def _demo_db(tmp_path: Path) -> Path:
    return make_sqlite(tmp_path / "one-api.db", tables_from_items(demo_items(demo.FILES.logs), {}))


def _error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_run_on_the_database_gives_the_api_runs_summary(
    demo_gateway: Gateway, tmp_path: Path
) -> None:
    keys = ",".join(demo_gateway.keys)
    api_env = {"RECONCILE_BASE_URL": demo_gateway.url, "RECONCILE_API_KEYS": keys}
    api = run_cli(
        "run", *ARGS, "--ledger", demo.FILES.ledger, "--out", tmp_path / "api", env=api_env
    )
    assert api.code == 1, api.stderr  # the demo has planted discrepancies

    db_env = {"RECONCILE_LOG_DSN": f"sqlite://{_demo_db(tmp_path)}", "RECONCILE_API_KEYS": keys}
    ran = run_cli("run", *ARGS, "--ledger", demo.FILES.ledger, "--out", tmp_path / "db", env=db_env)
    assert ran.code == 1, ran.stderr

    from_api, from_db = _summary(tmp_path / "api"), _summary(tmp_path / "db")
    fetch_api, fetch_db = from_api.pop("fetch"), from_db.pop("fetch")
    assert from_db == from_api  # every count, amount and finding
    assert fetch_db["key_refs"] == fetch_api["key_refs"]
    assert fetch_db["other_types"] == fetch_api["other_types"]
    assert fetch_db["base_url"] == f"sqlite://{tmp_path / 'one-api.db'}"
    snap_api = json.loads((tmp_path / "api/snapshot/manifest.json").read_text())
    snap_db = json.loads((tmp_path / "db/snapshot/manifest.json").read_text())
    assert snap_db["counts"] == snap_api["counts"]
    assert snap_db["files"] == snap_api["files"]  # the same logs files, byte for byte


def test_rerun_from_the_database_snapshot_offline(tmp_path: Path) -> None:
    env = {"RECONCILE_LOG_DSN": f"sqlite://{_demo_db(tmp_path)}", "RECONCILE_TOKEN_NAMES": "*"}
    first = run_cli("run", *ARGS, "--fail-on", "never", "--out", tmp_path / "a", env=env)
    assert first.code == 0, first.stderr
    again = run_cli(
        "run",
        *ARGS,
        "--fail-on",
        "never",
        "--from-snapshot",
        tmp_path / "a",
        "--out",
        tmp_path / "b",
    )
    assert again.code == 0, again.stderr
    assert _summary(tmp_path / "a")["logs"] == _summary(tmp_path / "b")["logs"]


@pytest.mark.parametrize(
    ("dsn", "says"),
    [
        ("sqlite:///nonexistent/one-api.db", "no such database file"),
        ("clickhouse://u:pw-XYZ@h:9000/l", "ClickHouse"),  # every form: test_source_dsn.py
    ],
)
def test_bad_dsn_is_exit_2_one_line(tmp_path: Path, dsn: str, says: str) -> None:
    env = {"RECONCILE_LOG_DSN": dsn, "RECONCILE_USER_ID": "1"}
    ran = run_cli("run", *ARGS, "--out", tmp_path / "out", env=env)
    assert ran.code == 2, ran.stderr
    line = _error_line(ran.stderr)
    assert says in line
    assert "pw-XYZ" not in ran.stderr + ran.stdout
    assert not (tmp_path / "out").exists()


def test_not_a_database_and_no_scope_are_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    ran = run_cli(
        "run", *ARGS, env={"RECONCILE_LOG_DSN": f"sqlite://{junk}", "RECONCILE_USER_ID": "1"}
    )
    assert ran.code == 2
    assert "not a readable SQLite database" in _error_line(ran.stderr)

    ran = run_cli("run", *ARGS, env={"RECONCILE_LOG_DSN": f"sqlite://{_demo_db(tmp_path)}"})
    assert ran.code == 2
    assert "RECONCILE_TOKEN_NAMES" in _error_line(ran.stderr)


def test_postgres_through_the_cli(postgres: PgServer, tmp_path: Path) -> None:
    tables = tables_from_items(demo_items(demo.FILES.logs), {})
    url = postgres.create_database("clirun", tables)
    keys = ",".join(demo.demo_keys())
    env = {"RECONCILE_LOG_DSN": url, "RECONCILE_API_KEYS": keys}
    ran = run_cli("run", *ARGS, "--ledger", demo.FILES.ledger, "--out", tmp_path / "pg", env=env)
    assert ran.code == 1, ran.stderr
    summary = _summary(tmp_path / "pg")
    expected = json.loads(demo.FILES.expected.read_text(encoding="utf-8"))
    assert summary["discrepancies"] == expected["discrepancies"]
    assert summary["fetch"]["base_url"] == f"postgresql://127.0.0.1:{postgres.port}/clirun"
    written = b"".join(p.read_bytes() for p in (tmp_path / "pg").rglob("*") if p.is_file())
    assert postgres.password.encode() not in written + ran.stdout.encode() + ran.stderr.encode()

    wrong = postgres.url("clirun", "not-the-pw-123")
    ran = run_cli("run", *ARGS, env={**env, "RECONCILE_LOG_DSN": wrong})
    assert ran.code == 2
    assert "password authentication failed" in _error_line(ran.stderr)
    assert "not-the-pw-123" not in ran.stderr + ran.stdout

    gone = url.replace(f":{postgres.port}/", ":1/")
    ran = run_cli("run", *ARGS, env={**env, "RECONCILE_LOG_DSN": gone})
    assert ran.code == 3
    assert "cannot connect" in _error_line(ran.stderr)
    assert postgres.password not in ran.stderr


def test_mysql_in_new_apis_own_dsn_form(mysql: MyServer, tmp_path: Path) -> None:
    """LOG_SQL_DSN as new-api takes it (go-sql-driver form), pasted as it is."""
    tables = tables_from_items(demo_items(demo.FILES.logs), {})
    mysql.create_database("clirun", tables)
    dsn = f"newapi:pw-Q7@tcp({mysql.host}:{mysql.port})/clirun?charset=utf8mb4&parseTime=True"
    env = {"RECONCILE_LOG_DSN": dsn, "RECONCILE_API_KEYS": ",".join(demo.demo_keys())}
    ran = run_cli("run", *ARGS, "--ledger", demo.FILES.ledger, "--out", tmp_path / "my", env=env)
    assert ran.code == 1, ran.stderr
    summary = _summary(tmp_path / "my")
    expected = json.loads(demo.FILES.expected.read_text(encoding="utf-8"))
    assert summary["discrepancies"] == expected["discrepancies"]
    assert summary["fetch"]["base_url"] == f"mysql://{mysql.host}:{mysql.port}/clirun"
    assert "pw-Q7" not in ran.stderr + ran.stdout


def test_source_setting_forces_the_database(tmp_path: Path, demo_gateway: Gateway) -> None:
    """RECONCILE_SOURCE=database wins over a configured gateway URL; without a DSN it says so."""
    env = {
        "RECONCILE_SOURCE": "database",
        "RECONCILE_BASE_URL": demo_gateway.url,
        "RECONCILE_API_KEYS": ",".join(demo_gateway.keys),
    }
    ran = run_cli("run", *ARGS, env=env)
    assert ran.code == 2
    assert "RECONCILE_LOG_DSN" in _error_line(ran.stderr)


def test_fetch_from_the_database_then_run_from_its_snapshot(tmp_path: Path) -> None:
    """`reconcile fetch` streams the database into a snapshot a day at a time; a run from it
    gives the run from the database, and the report's snapshot is a copy of it."""
    env = {"RECONCILE_LOG_DSN": f"sqlite://{_demo_db(tmp_path)}", "RECONCILE_TOKEN_NAMES": "*"}
    fetched = run_cli("fetch", *ARGS[:4], "--out", tmp_path / "f", env=env)
    assert fetched.code == 0, fetched.stderr
    snap = tmp_path / "f" / "snapshot"
    manifest = json.loads((snap / "manifest.json").read_text())
    assert len(manifest["files"]) == 31  # a file per day of the month
    assert f"{manifest['counts']['logs']:,} logs in 31 windows -> {snap}" in fetched.stdout

    direct = run_cli("run", *ARGS, "--fail-on", "never", "--out", tmp_path / "a", env=env)
    assert direct.code == 0, direct.stderr
    offline = ("run", *ARGS, "--fail-on", "never", "--from-snapshot", tmp_path / "f")
    again = run_cli(*offline, "--out", tmp_path / "b")
    assert again.code == 0, again.stderr
    direct_summary, offline_summary = _summary(tmp_path / "a"), _summary(tmp_path / "b")
    for summary in (direct_summary, offline_summary):
        del summary["fetch"]["fetched_at"]  # read at another second
    assert offline_summary == direct_summary
    for f in manifest["files"]:
        assert (tmp_path / "b" / "snapshot" / f["name"]).read_bytes() == (
            snap / f["name"]
        ).read_bytes()
