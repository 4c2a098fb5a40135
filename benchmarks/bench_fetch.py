"""Benchmark the fetcher against the built-in gateway (prints figures; not a test).

1. Speed: a month holding N logs (default 100,000) for one key, 20 ms added per request,
   the gateway in its own process (`python -m reconcile.demo.gateway`), as a real gateway would be.
   Three things are timed, each in a fresh Python process:
   - the baseline: a sequential paginator written like the API page's example loop
     (httpx, page_size 100, p = 1, 2, ... until items are empty or p * page_size >= total),
     as a script of its own;
   - the fetch stage, `fetch_logs` (median of --repeat runs);
   - the whole `reconcile fetch` command, from process start to exit: interpreter start-up,
     imports, the fetch and writing the snapshot (median of --repeat runs).
   Each is compared with the baseline (loop against stage, script against command); all must
   return the identical id set.
2. Ids by position: the same month from a gateway that numbers logs by their position on the
   page (as new-api's /api/log/self does for users): the fetcher reads it by content, in
   windows that fit one page, and must stay within 1.3x of the stable-id fetch time and
   return the same logs (compared by request_id, unique per log in the data).
3. Faults: the same fetch against an in-process gateway where every 7th request gets a 429,
   every 11th a 500, and rows are inserted into the queried range during paging. The result
   must be exactly the ids the gateway's store holds for the period at the end.

    ./dev python benchmarks/bench_fetch.py                # 100,000 logs
    ./dev python benchmarks/bench_fetch.py --logs 20000   # quicker
    ./dev python benchmarks/bench_fetch.py --concurrency 8 --skip-faults

Figures are noisy on a shared machine: run it a few times. At 20 ms per request the fetcher is
bound by its own CPU (HTTP client, JSON decoding, building the table: about 1.4 ms per page of
100 logs on the reference machine), so connections beyond what one core can keep busy do not
help; with a slower gateway (--latency 0.05) the ratio grows.
"""

from __future__ import annotations

import argparse
import compileall
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import reconcile
from reconcile.core.period import Period, parse_period
from reconcile.demo.gateway import Faults, GatewayServer, LogStore
from reconcile.settings import ApiKey, Settings
from reconcile.sources import http as fetch
from reconcile.sources.progress import FetchProgress
from reconcile.sources.snapshot import read_snapshot
from reconcile.sources.token import fetch_logs

KEY = "sk-bench" + "7" * 40
PERIOD = parse_period("2026-10", None, None, "Asia/Shanghai")
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet-20241022", "deepseek-chat")


def write_logs(path: Path, n: int, period: Period, seed: int) -> None:
    """n realistic log items spread over the period (and a few just outside it)."""
    rng = random.Random(seed)
    lo, hi = period.start_ts - 3600, period.end_ts + 3600
    with path.open("w", encoding="utf-8") as f:
        for i, created in enumerate(sorted(rng.randint(lo, hi) for _ in range(n)), start=1):
            prompt, completion = rng.randint(10, 8000), rng.randint(0, 2000)
            ratio, cratio = rng.choice(((1.25, 4), (0.075, 4), (1.5, 5), (0.135, 2)))
            item = {
                "key": KEY,
                "id": i,
                "created_at": created,
                "type": rng.choice((2,) * 30 + (5, 6, 1)),
                "username": "acme",
                "token_name": "prod",
                "model_name": rng.choice(MODELS),
                "quota": round((prompt + completion * cratio) * ratio),
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "use_time": rng.randint(1, 30),
                "is_stream": rng.random() < 0.7,
                "channel": rng.randint(1, 9),
                "group": "default",
                "request_id": f"2026{i:012d}",
                "content": f"模型倍率 {ratio:.2f}，补全倍率 {cratio:.2f}，分组倍率 1.00",
                "other": json.dumps(
                    {
                        "model_ratio": ratio,
                        "completion_ratio": cratio,
                        "group_ratio": 1,
                        "frt": rng.randint(100, 3000),
                        "request_path": "/v1/chat/completions",
                    }
                ),
            }
            f.write(json.dumps(item, ensure_ascii=False) + "\n")


def ids_in_file(path: Path, period: Period) -> set[int]:
    with path.open(encoding="utf-8") as f:
        items = (json.loads(line) for line in f)
        return {i["id"] for i in items if period.start_ts <= i["created_at"] < period.end_ts}


#: The baseline, run as `python -c SEQUENTIAL url key start end`: the API page's example loop
#: (one page after another) with a keep-alive httpx client, printing its figures as JSON.
SEQUENTIAL = """
import json, sys, time
import httpx

url, key, start, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
ids, requests, p = set(), 0, 1
with httpx.Client(timeout=30) as client:
    while True:
        resp = client.get(
            f"{url}/api/log/token",
            params={"key": key, "p": p, "page_size": 100,
                    "start_timestamp": start, "end_timestamp": end},
        )
        requests += 1
        data = resp.json()["data"]
        ids.update(item["id"] for item in data["items"])
        if not data["items"] or p * 100 >= data["total"]:
            break
        p += 1
took = time.perf_counter() - t0
print(json.dumps({"seconds": took, "requests": requests, "ids": sorted(ids)}))
"""


def start_gateway(
    data: Path, latency: float, id_style: str = "real"
) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconcile.demo.gateway",
            "--data",
            str(data),
            "--latency",
            str(latency),
            "--id-style",
            id_style,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line.rsplit(" ", 1)[-1].strip()


def measure(url: str, out: Path, concurrency: int, window_rows: int) -> None:
    """Child process: time fetch_logs, write the ids and the figures to `out`."""
    logging.getLogger("reconcile.sources.engine").setLevel(logging.ERROR)
    seen: list[FetchProgress] = []
    settings = Settings(base_url=url, concurrency=concurrency, window_rows=window_rows)
    t0 = time.perf_counter()
    result = fetch_logs(settings, PERIOD, [ApiKey.of(KEY)], seen.append)
    took = time.perf_counter() - t0
    figures = {
        "seconds": took,
        "requests": seen[-1].pages + seen[-1].retries,
        "windows": len(result.windows),
        "ids": sorted(set(result.logs["id"].tolist())),
        "request_ids": sorted(result.logs["request_id"].tolist()),
        "id_scheme": result.id_scheme,
    }
    out.write_text(json.dumps(figures))


def run_stage(url: str, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--url", url, "--out", str(out)]
    cmd += ["--concurrency", str(args.concurrency), "--window-rows", str(args.window_rows)]
    subprocess.run(cmd, check=True)
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def run_sequential(url: str) -> dict[str, Any]:
    """The baseline script; `process` is its wall time from start to exit."""
    args = [url, KEY, str(PERIOD.start_ts), str(PERIOD.end_ts - 1)]
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", SEQUENTIAL, *args], check=True, capture_output=True, text=True
    )
    process = time.perf_counter() - t0
    figures: dict[str, Any] = json.loads(done.stdout)
    return {**figures, "process": process}


def run_command(url: str, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """`reconcile fetch` as a user runs it; wall time from process start to exit."""
    env = {
        **os.environ,
        "RECONCILE_BASE_URL": url,
        "RECONCILE_API_KEYS": KEY,
        "RECONCILE_CONCURRENCY": str(args.concurrency),
        "RECONCILE_WINDOW_ROWS": str(args.window_rows),
    }
    cmd = [str(Path(sys.executable).with_name("reconcile")), "fetch", "--quiet"]
    cmd += ["--period", PERIOD.label, "--tz", PERIOD.timezone, "--out", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    took = time.perf_counter() - t0
    ids = read_snapshot(out).logs["id"]  # the snapshot as `--from-snapshot` reads it
    return {"seconds": took, "ids": sorted(set(ids.tolist()))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--logs", type=int, default=100_000)
    ap.add_argument("--latency", type=float, default=0.02, help="seconds added per request")
    default = Settings.model_fields["concurrency"].default
    ap.add_argument("--concurrency", type=int, default=default, help="default: the setting's")
    ap.add_argument("--window-rows", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each (median reported)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-faults", action="store_true")
    ap.add_argument("--only-position", action="store_true", help="only part 2 (ids by position)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        measure(args.url, args.out, args.concurrency, args.window_rows)
        return 0
    logging.getLogger("reconcile.sources.engine").setLevel(
        logging.ERROR
    )  # retries are counted below
    settings_kw = {"concurrency": args.concurrency, "window_rows": args.window_rows}
    key = ApiKey.of(KEY)
    failed = False

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "logs.jsonl"
        write_logs(data, args.logs, PERIOD, args.seed)
        in_period = ids_in_file(data, PERIOD)
        print(
            f"gateway: {args.logs} logs for one key, {len(in_period)} in {PERIOD.label} "
            f"({PERIOD.timezone}); {args.latency * 1000:.0f} ms added per request"
        )

        # as an installed package has it: bytecode compiled once (pip does at install time;
        # an environment with PYTHONDONTWRITEBYTECODE would otherwise recompile every start)
        compileall.compile_dir(Path(reconcile.__file__).parent, quiet=1)
        if not args.only_position:
            # -- 1. speed: each run in a fresh process ------------------------------------------
            proc, url = start_gateway(data, args.latency)
            try:
                seq = run_sequential(url)
                runs = range(args.repeat)
                stages = [run_stage(url, Path(tmp) / f"stage{i}.json", args) for i in runs]
                commands = [run_command(url, Path(tmp) / f"cmd{i}", args) for i in runs]
            finally:
                proc.terminate()
                proc.wait(timeout=10)
            n = len(seq["ids"])
            print(
                f"sequential paginator:      {seq['seconds']:6.2f} s"
                f" (script, start to exit: {seq['process']:.2f} s;"
                f" {seq['requests']} requests, {n} ids, {n / seq['seconds']:.0f} logs/s)"
            )
            stage = median(r["seconds"] for r in stages)
            print(
                f"fetch_logs (c={args.concurrency}):          {stage:6.2f} s"
                f"  ({stages[0]['requests']} requests, {stages[0]['windows']} windows, "
                f"{n / stage:.0f} logs/s; runs {listed(stages)})"
            )
            command = median(r["seconds"] for r in commands)
            print(
                f"reconcile fetch (c={args.concurrency}):     {command:6.2f} s"
                f"  (start-up, fetch and snapshot; runs {listed(commands)})"
            )
            print(f"speed-up, fetch stage against the loop:        {seq['seconds'] / stage:5.1f}x")
            print(
                f"speed-up, whole command against the script:    {seq['process'] / command:5.1f}x"
            )
            same = all(set(r["ids"]) == in_period for r in [seq, *stages, *commands])
            print(f"identical id sets (sequential, every run of each, gateway): {same}")
            failed |= not same

        # -- 2. ids by position: read by content ---------------------------------------------
        # Both gateways run at once and the two fetches alternate, so that a shared machine's
        # changing load falls on both alike.
        real_proc, real_url = start_gateway(data, args.latency)
        pos_proc, pos_url = start_gateway(data, args.latency, "row_number")
        stable_runs: list[dict[str, Any]] = []
        positional: list[dict[str, Any]] = []
        try:
            for i in range(args.repeat):
                stable_runs.append(run_stage(real_url, Path(tmp) / f"real{i}.json", args))
                positional.append(run_stage(pos_url, Path(tmp) / f"pos{i}.json", args))
        finally:
            for proc in (real_proc, pos_proc):
                proc.terminate()
                proc.wait(timeout=10)
        by_id = median(r["seconds"] for r in stable_runs)
        by_position = median(r["seconds"] for r in positional)
        ratio = by_position / by_id
        print(
            f"fetch_logs, stable ids:      {by_id:6.2f} s  ({stable_runs[0]['requests']} "
            f"requests, {stable_runs[0]['windows']} windows; runs {listed(stable_runs)})"
        )
        print(
            f"fetch_logs, ids by position: {by_position:6.2f} s"
            f"  ({positional[0]['requests']} requests, {positional[0]['windows']} windows, "
            f"id_scheme {positional[0]['id_scheme']}; runs {listed(positional)})"
        )
        print(f"ids by position against stable ids:            {ratio:5.2f}x (target <= 1.3x)")
        logs_same = all(r["request_ids"] == stable_runs[0]["request_ids"] for r in positional)
        print(f"the same logs (by request_id) as the stable-id fetch: {logs_same}")
        failed |= not logs_same or ratio > 1.3

        # -- 3. faults ------------------------------------------------------------------------
        if not args.skip_faults and not args.only_position:
            fetch.BACKOFF_BASE = 0.05
            faults = Faults(
                latency=args.latency,
                status_429_every=7,
                retry_after=0.2,
                status_500_every=11,
                insert_every=50,
                seed=args.seed,
            )
            progress: list[FetchProgress] = []
            store = LogStore.from_jsonl(data)
            with GatewayServer(store, faults) as server:
                t0 = time.perf_counter()
                result = fetch_logs(
                    Settings(base_url=server.url, **settings_kw), PERIOD, [key], progress.append
                )
                took = time.perf_counter() - t0
                stats = dict(server.stats)
                inserted = set(server.inserted)
            final = store.ids(KEY, PERIOD.start_ts, PERIOD.end_ts - 1)
            got = set(result.logs["id"].tolist())
            repaired = sum(1 for w in result.windows if w.attempts > 1)
            print(
                f"with faults: {took:.2f} s, {sum(stats.values())} requests "
                f"({stats.get('429', 0)} x 429, {stats.get('5xx', 0)} x 500), "
                f"{progress[-1].retries} retried, {len(inserted)} rows inserted while paging, "
                f"{repaired} windows repaired, "
                f"{result.duplicates} duplicates dropped"
            )
            same = got == final and inserted <= got and len(result.logs) == len(final)
            print(
                f"identical to the store's ids for the period at the end: {same} "
                f"({len(got)} ids = {len(in_period)} before + {len(final) - len(in_period)} "
                "inserted)"
            )
            failed |= not same
    return 1 if failed else 0


def median(values: Iterable[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def listed(runs: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['seconds']:.2f}" for r in runs) + " s"


if __name__ == "__main__":
    sys.exit(main())
