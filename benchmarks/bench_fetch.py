"""Benchmark the fetcher against the built-in gateway (prints figures; not a test).

1. Speed: a month holding N logs (default 100,000) for one key, 20 ms added per request.
   `fetch_logs` (concurrent windows) against a sequential paginator written like the API
   page's example loop (page_size 100, p = 1, 2, ... until items are empty or
   p * page_size >= total). Both must return the identical id set; prints both times and
   the ratio (fetch_logs: median of --repeat runs). The gateway runs in its own process
   (`python -m reconcile.gateway`), as a real gateway would, and each timed run is a fresh
   Python process, as `reconcile fetch` is, so neither inherits the other's heap.
2. Faults: the same fetch against an in-process gateway where every 7th request gets a 429,
   every 11th a 500, and rows are inserted into the queried range during paging. The result
   must be exactly the ids the gateway's store holds for the period at the end.

    ./dev python benchmarks/bench_fetch.py                # 100,000 logs
    ./dev python benchmarks/bench_fetch.py --logs 20000   # quicker

Figures are noisy on a shared machine: run it a few times. At 20 ms the fetcher is bound by
its own CPU (about 3 ms per page of 100 logs: HTTP client, JSON decoding, building the
table), not by the gateway; with a slower gateway (--latency 0.05) the ratio grows.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from reconcile import fetch
from reconcile.fetch import fetch_logs
from reconcile.gateway import Faults, GatewayServer, LogStore
from reconcile.period import Period, parse_period
from reconcile.progress import FetchProgress
from reconcile.settings import ApiKey, Settings

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


def sequential_ids(url: str, period: Period) -> tuple[set[int], int]:
    """The API page's loop: one page after another, until empty or p * page_size >= total."""
    ids: set[int] = set()
    requests = 0
    with httpx.Client(timeout=30) as client:
        p = 1
        while True:
            resp = client.get(
                f"{url}/api/log/token",
                params={
                    "key": KEY,
                    "p": p,
                    "page_size": 100,
                    "start_timestamp": period.start_ts,
                    "end_timestamp": period.end_ts - 1,
                },
            )
            requests += 1
            data = resp.json()["data"]
            ids.update(item["id"] for item in data["items"])
            if not data["items"] or p * 100 >= data["total"]:
                return ids, requests
            p += 1


def start_gateway(data: Path, latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconcile.gateway", "--data", str(data), "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line.rsplit(" ", 1)[-1].strip()


def measure(mode: str, url: str, out: Path, concurrency: int, window_rows: int) -> None:
    """Child process: time one way of fetching, write the ids and the figures to `out`."""
    logging.getLogger("reconcile.fetch").setLevel(logging.ERROR)
    if mode == "sequential":
        t0 = time.perf_counter()
        ids, requests = sequential_ids(url, PERIOD)
        took, windows = time.perf_counter() - t0, 1
    else:
        seen: list[FetchProgress] = []
        settings = Settings(base_url=url, concurrency=concurrency, window_rows=window_rows)
        t0 = time.perf_counter()
        result = fetch_logs(settings, PERIOD, [ApiKey.of(KEY)], seen.append)
        took = time.perf_counter() - t0
        ids = set(result.logs["id"].tolist())
        requests, windows = seen[-1].pages + seen[-1].retries, len(result.windows)
    out.write_text(
        json.dumps({"seconds": took, "requests": requests, "windows": windows, "ids": sorted(ids)})
    )


def run_child(mode: str, url: str, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--url",
        url,
        "--out",
        str(out),
        "--concurrency",
        str(args.concurrency),
        "--window-rows",
        str(args.window_rows),
    ]
    subprocess.run(cmd, check=True)
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--logs", type=int, default=100_000)
    ap.add_argument("--latency", type=float, default=0.02, help="seconds added per request")
    ap.add_argument("--concurrency", type=int, default=12, help="best measured on 2 cores")
    ap.add_argument("--window-rows", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3, help="fetch_logs runs (median reported)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-faults", action="store_true")
    ap.add_argument("--child", choices=["sequential", "concurrent"], help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        measure(args.child, args.url, args.out, args.concurrency, args.window_rows)
        return 0
    logging.getLogger("reconcile.fetch").setLevel(logging.ERROR)  # retries are counted below
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

        # -- 1. speed: each run in a fresh process, as `reconcile fetch` would be ---------------
        proc, url = start_gateway(data, args.latency)
        try:
            seq = run_child("sequential", url, Path(tmp) / "seq.json", args)
            runs = [
                run_child("concurrent", url, Path(tmp) / f"con{i}.json", args)
                for i in range(args.repeat)
            ]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        print(
            f"sequential paginator:   {seq['seconds']:6.2f} s  {seq['requests']:5d} requests  "
            f"{len(seq['ids']):6d} ids  {len(seq['ids']) / seq['seconds']:6.0f} logs/s"
        )
        times = sorted(r["seconds"] for r in runs)
        con = times[len(times) // 2]
        first = runs[0]
        print(
            f"fetch_logs (c={args.concurrency:<3d}):     {con:6.2f} s  "
            f"{first['requests']:5d} requests  "
            f"{len(first['ids']):6d} ids  {len(first['ids']) / con:6.0f} logs/s  "
            f"({first['windows']} windows; median of {', '.join(f'{t:.2f}' for t in times)} s)"
        )
        print(f"speed-up: {seq['seconds'] / con:.1f}x (target >= 8x)")
        same = all(set(r["ids"]) == in_period for r in [seq, *runs])
        print(f"identical id sets (sequential, every concurrent run, gateway): {same}")
        failed |= not same

        # -- 2. faults ------------------------------------------------------------------------
        if not args.skip_faults:
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


if __name__ == "__main__":
    sys.exit(main())
