"""Reading a month of logs from new-api's SQLite database, and storing it as a snapshot: the
database source against the naive read, and `reconcile fetch` against the whole-month write,
time and peak memory side by side.

    ./dev python benchmarks/bench_database.py [--rows 1000000,5000000] [--keep DIR]
        [--what read,fetch,open] [--postgres]

Builds a SQLite file per size with new-api's `tokens` and `logs` tables (the tests' DDL) and
N consume logs of one token spread over October 2026, with the text a real gateway writes
(`content`, a ~200-byte `other`, a request id). Then, each in a fresh child process so its
peak resident memory (ru_maxrss) is its own:
  read  - source: DatabaseSource.fetch, scoped by the token's API key, as `reconcile run` reads;
        - naive:  pandas.read_sql of the period's rows in one query, then the same LOG_DTYPES
                  frame (what one would write without the source: every row as Python objects
                  at once, then converted).
  fetch - stream: the `reconcile fetch` command itself (its own process, from start to exit):
                  each day read, written to its Parquet file and dropped;
        - whole:  what `reconcile fetch` did before: the month read whole (DatabaseSource.fetch),
                  then put in canonical order and encoded as one Parquet file (the version 1
                  snapshot write), then written.
  open  - store:  open_snapshot of the snapshot `fetch` wrote (every file verified), then every
                  day read in turn, as a run reads it;
        - whole:  read_snapshot, the month in memory at once.
With --postgres the same rows are also copied into a throwaway PostgreSQL server (the tests'
`postgres_server`) and read both ways from there. Both methods must return the same number of
logs; the figures go to benchmarks/README.md, with the load average printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from database_helpers import (  # noqa: E402
    LOG_COLUMNS,
    POSTGRES_DDL,
    SQLITE_DDL,
    insert_sql,
    postgres_server,
)

KEY = "sk-benchBenchBenchBenchBenchBenchBenchBench0000000000"
START = 1790784000  # 2026-10-01T00:00:00Z
DAYS = 31
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-20250514", "deepseek-chat"]


def build(path: Path, n: int, seed: int = 11) -> None:
    """A new-api SQLite file with `n` consume logs of one token (ids 1..n, in time order)."""
    rng = np.random.default_rng(seed)
    created = np.sort(rng.integers(START, START + DAYS * 86400, n))
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(SQLITE_DDL)
        conn.execute(
            "INSERT INTO tokens (id, user_id, key, name) VALUES (1, 1, ?, 'prod')",
            [KEY.removeprefix("sk-")],
        )
        sql = insert_sql("logs", LOG_COLUMNS, "?")
        for lo in range(0, n, 200_000):
            hi = min(n, lo + 200_000)
            m = hi - lo
            prompt = rng.integers(100, 8000, m).tolist()
            completion = rng.integers(10, 2000, m).tolist()
            model = rng.choice(MODELS, m).tolist()
            rows = (
                (
                    lo + i + 1,
                    1,
                    int(created[lo + i]),
                    2,
                    "模型倍率 1.25，补全倍率 4.00，分组倍率 1.00",
                    "bench",
                    "prod",
                    model[i],
                    prompt[i] + completion[i] * 4,
                    prompt[i],
                    completion[i],
                    3,
                    1,
                    7,
                    1,
                    "default",
                    "",
                    f"req_{lo + i:016x}",
                    '{"group_ratio":1.0,"user_group_ratio":-1,"frt":1852,"request_path":'
                    '"/v1/chat/completions","model_ratio":1.25,"model_price":-1,'
                    f'"completion_ratio":4.0,"cache_tokens":0,"cache_ratio":0.5,"n":{i}}}',
                )
                for i in range(m)
            )
            conn.executemany(sql, rows)
            conn.commit()


def copy_to_postgres(sqlite_db: Path, url: str) -> None:
    """The SQLite file's tokens and logs into a fresh PostgreSQL database at `url`."""
    import psycopg

    with closing(sqlite3.connect(sqlite_db)) as src, psycopg.connect(url) as dst:
        dst.execute(POSTGRES_DDL)
        dst.execute(
            "INSERT INTO tokens (id, user_id, key, name) VALUES (1, 1, %s, 'prod')",
            [KEY.removeprefix("sk-")],
        )
        cols = ",".join(f'"{c}"' for c in LOG_COLUMNS)
        with dst.cursor().copy(f"COPY logs ({cols}) FROM STDIN") as copy:
            for row in src.execute(f"SELECT {cols} FROM logs"):
                copy.write_row((*row[:12], bool(row[12]), *row[13:]))
        dst.execute("ANALYZE logs")


def measure(method: str, dsn: str) -> dict[str, Any]:
    """Run in a child process: read the period one way; time, rows and this process's peak."""
    from pydantic import SecretStr

    from reconcile.core.period import parse_period
    from reconcile.settings import Settings

    period = parse_period("2026-10", None, None, "UTC")
    started = time.perf_counter()
    if method in ("whole-fetch", "store-open", "whole-open"):
        rows = _snapshot_method(method, dsn, period)
    elif method == "source":
        from reconcile.sources.database import DatabaseSource

        settings = Settings(log_dsn=SecretStr(dsn), api_keys=SecretStr(KEY))
        rows = len(DatabaseSource(settings).fetch(period).logs)
    else:
        import warnings

        import pandas as pd

        from reconcile.core.schema import LOG_DTYPES

        sql = (
            "SELECT * FROM logs WHERE token_id = 1 AND created_at >= {0} AND created_at < {0} "
            "ORDER BY created_at, id"
        )
        bounds = [period.start_ts, period.end_ts]
        if dsn.startswith("sqlite:"):
            path = dsn.removeprefix("sqlite://")
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
                df = pd.read_sql(sql.format("?"), conn, params=bounds)
        else:
            import psycopg

            with psycopg.connect(dsn) as conn, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pandas prefers SQLAlchemy; it works without
                df = pd.read_sql(sql.format("%s"), conn, params=bounds)
        df = df.rename(columns={"channel_id": "channel"}).assign(key_ref="key")
        rows = len(df[list(LOG_DTYPES)].astype(LOG_DTYPES))
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_mb = usage.ru_maxrss / 1024
    cpu = usage.ru_utime + usage.ru_stime
    shown = method.split("-")[0]
    return {"method": shown, "rows": rows, "seconds": seconds, "cpu": cpu, "peak_mb": peak_mb}


def _snapshot_method(method: str, where: str, period: Any) -> int:
    """`where`: the database's DSN and the snapshot directory, joined by a newline."""
    from pydantic import SecretStr

    from reconcile.core.atomic import atomic_write_bytes
    from reconcile.settings import Settings
    from reconcile.sources import snapshot_write
    from reconcile.sources.database import DatabaseSource
    from reconcile.sources.snapshot import open_snapshot, read_snapshot

    dsn, out = where.split("\n")
    if method == "whole-fetch":  # the version 1 write: the month in canonical order, one file
        settings = Settings(log_dsn=SecretStr(dsn), api_keys=SecretStr(KEY))
        logs = DatabaseSource(settings).fetch(period).logs
        canonical = snapshot_write._canonical_logs(logs)
        del logs
        data = snapshot_write._parquet_bytes(canonical)
        Path(out).mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(out) / "logs.parquet", data)
        return len(canonical)
    if method == "whole-open":
        return len(read_snapshot(Path(out)).logs)
    store = open_snapshot(Path(out))
    return sum(len(store.day(i)) for i in range(store.days))


def fetch_command(dsn: str, out: Path) -> dict[str, Any]:
    """`reconcile fetch` from the database in its own process: its time and peak (wait4)."""
    env = {**os.environ, "RECONCILE_LOG_DSN": dsn, "RECONCILE_API_KEYS": KEY}
    cmd = [sys.executable, "-m", "reconcile", "fetch", "--period", "2026-10", "--tz", "UTC"]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as cwd, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(  # in a directory of its own: no .env of the checkout
            [*cmd, "--out", str(out), "--quiet"],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=err,
        )
        assert proc.stdout is not None
        said = proc.stdout.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)
        err.seek(0)
        if status != 0:
            raise SystemExit(f"reconcile fetch failed ({status}): {err.read()[-2000:]!r}")
    rows = int(said.split()[0].replace(",", ""))
    seconds = time.perf_counter() - started
    peak_mb = usage.ru_maxrss / 1024
    cpu = usage.ru_utime + usage.ru_stime
    return {"method": "stream", "rows": rows, "seconds": seconds, "cpu": cpu, "peak_mb": peak_mb}


#: The contract the built logs were charged by: quota = prompt + 4 x completion, every model.
RULES = """quota_per_unit = 500000
[tolerance]
quota = 1
[groups]
default = 1
[[model]]
match = "*"
model_ratio = 1
completion_ratio = 4
cache_ratio = 0.5
"""


def run_command(dsn: str, out: Path) -> dict[str, Any]:
    """`reconcile run` from the database, every output written, in its own process (wait4):
    the end-to-end peak. The logs are priced as they were charged, so there are no findings."""
    env = {**os.environ, "RECONCILE_LOG_DSN": dsn, "RECONCILE_API_KEYS": KEY}
    with tempfile.TemporaryDirectory() as cwd, tempfile.TemporaryFile() as err:
        rules = Path(cwd) / "rules.toml"
        rules.write_text(RULES, encoding="utf-8")
        cmd = [sys.executable, "-m", "reconcile", "run", "--period", "2026-10", "--tz", "UTC",
               "--rules", str(rules), "--out", str(out), "--quiet"]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"reconcile run failed ({status}): {err.read()[-2000:]!r}")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    rows = int(summary["pricing"]["consume_logs"])
    cpu = usage.ru_utime + usage.ru_stime
    return {"method": "run", "rows": rows, "seconds": seconds, "cpu": cpu,
            "peak_mb": usage.ru_maxrss / 1024}  # fmt: skip


def child(method: str, dsn: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", method, "--dsn", dsn],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{method} failed:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def show(n: int, kind: str, results: list[dict[str, Any]]) -> None:
    if len({r["rows"] for r in results}) != 1:
        raise SystemExit(f"the methods disagree: {results}")
    for r in results:
        print(
            f"{n:>10,} {kind:<12} {r['method']:<7} {r['seconds']:>8.1f} {r['cpu']:>7.1f} "
            f"{r['rows'] / r['seconds']:>10,.0f} {r['peak_mb']:>7,.0f}  {r['load']}",
            flush=True,
        )


def timed(run: Any, *args: Any) -> dict[str, Any]:
    before = load()
    result: dict[str, Any] = run(*args)
    result["load"] = f"{before} / {load()}"
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1000000,5000000", help="comma-separated sizes")
    ap.add_argument("--keep", type=Path, help="keep (and reuse) the database files here")
    ap.add_argument("--what", default="read,fetch,open", help="read, fetch, open and/or run")
    ap.add_argument("--postgres", action="store_true", help="also read them from PostgreSQL")
    ap.add_argument("--skip-sqlite", action="store_true", help="only the PostgreSQL reads")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--dsn", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.dsn)))
        return 0
    sizes = [int(s) for s in args.rows.split(",")]
    what = set(args.what.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        print(
            f"{'rows':>10} {'what':<12} {'method':<7} {'seconds':>8} {'cpu s':>7} {'rows/s':>10} "
            f"{'MB':>7}  load average (1 min) before / after"
        )
        for n in sizes:
            db = where / f"logs-{n}.db"
            if not db.exists():
                t0 = time.perf_counter()
                build(db, n)
                size_mb = db.stat().st_size / 2**20
                print(f"# built {db.name}: {size_mb:,.0f} MB in {time.perf_counter() - t0:.0f}s")
            dsn = f"sqlite://{db}"
            snap = where / f"fetched-{n}"
            if not args.skip_sqlite and "read" in what:
                results = [timed(child, m, dsn) for m in ("source", "naive")]
                show(n, "read sqlite", results)
            if not args.skip_sqlite and ("fetch" in what or "open" in what):
                if "fetch" in what or not (snap / "snapshot").is_dir():  # else: --keep's
                    stream = timed(fetch_command, dsn, snap)
                files = sorted((snap / "snapshot").glob("logs-*.parquet"))
                size_mb = sum(p.stat().st_size for p in files) / 2**20
                if "fetch" in what:
                    old = timed(child, "whole-fetch", f"{dsn}\n{where / 'v1'}")
                    show(n, "fetch", [stream, old])
                    print(f"# snapshot: {len(files)} day files, {size_mb:,.0f} MB")
                if "open" in what:
                    results = [
                        timed(child, m, f"{dsn}\n{snap}") for m in ("store-open", "whole-open")
                    ]
                    show(n, "open", results)
            if not args.skip_sqlite and "run" in what:
                show(n, "run", [timed(run_command, dsn, where / f"report-{n}")])
            if args.postgres:
                with postgres_server() as pg:
                    url = pg.url("postgres")
                    t0 = time.perf_counter()
                    copy_to_postgres(db, url)
                    print(f"# copied to PostgreSQL in {time.perf_counter() - t0:.0f}s")
                    show(
                        n,
                        "read postgresql",
                        [timed(child, m, url) for m in ("source", "naive")],
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
