"""Benchmark: load a 1,000,000-row ledger CSV and match it against 1,000,000 logs.

Usage: ./dev python benchmarks/bench_match.py [--rows N] [--seed S]

The parent process builds the logs (schema.LOG_DTYPES) and a ledger with planted
discrepancies, writes the logs as Parquet and the ledger as CSV to a temp dir, then runs the
measured stage in a fresh child process so the peak memory (resource.getrusage ru_maxrss of
that child: resident set, not just Python objects, so pyarrow buffers count) belongs to
loading + matching alone, not to building the data. The child times load_ledger and
match_ledger separately and checks every planted discrepancy was found, exactly.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from reconcile.core.period import parse_period
from reconcile.core.schema import LOG_DTYPES

TZ = "Asia/Shanghai"
PLANTS = {
    "missing_in_ledger": 2000,  # logs whose ledger row was left out
    "missing_in_logs": 1500,  # ledger rows for ids the gateway never logged
    "amount_mismatch": 2500,  # ledger quota off by more than the tolerance
    "duplicate_ledger": 1000,  # a second row for an already booked log
    "out_of_period": 800,  # rows dated a minute before or after the period
}
WITHIN_TOLERANCE = 1000  # rows off by exactly the tolerance (1 quota): not findings


def build(rows: int, seed: int, out: Path) -> dict[str, int]:
    """Write logs.parquet and ledger.csv into `out`; return the planted counts."""
    rng = np.random.default_rng(seed)
    period = parse_period("2026-10", None, None, TZ)
    start, end = period.start_ts, period.end_ts
    ids = np.sort(rng.choice(np.arange(1, rows * 3), size=rows, replace=False)).astype(np.int64)
    types = rng.choice([2, 6, 1, 5], size=rows, p=[0.94, 0.02, 0.01, 0.03]).astype(np.int64)
    quota = rng.integers(1, 200_000, size=rows).astype(np.int64)
    quota[types == 5] = 0
    created = np.sort(rng.integers(start, end, size=rows)).astype(np.int64)
    models = np.array(["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "dall-e-3"], dtype=object)
    tokens = np.array([f"team-{i:02d}" for i in range(40)], dtype=object)
    logs = pd.DataFrame(
        {
            "id": ids,
            "created_at": created,
            "type": types,
            "key_ref": "key-0000abcd",
            "token_name": tokens[rng.integers(0, len(tokens), rows)],
            "username": "finance",
            "model_name": models[rng.integers(0, len(models), rows)],
            "group": "default",
            "quota": quota,
            "prompt_tokens": rng.integers(0, 5000, rows),
            "completion_tokens": rng.integers(0, 2000, rows),
            "use_time": rng.integers(0, 30, rows),
            "is_stream": rng.integers(0, 2, rows).astype(bool),
            "channel": 1,
            "request_id": [f"req-{i:x}" for i in ids],
            "content": "",
            "other": "{}",
        }
    )
    logs = logs.astype(LOG_DTYPES)[list(LOG_DTYPES)]
    logs.to_parquet(out / "logs.parquet")

    # The ledger: one row per spend log, then the plants.
    spend = np.flatnonzero(types != 5)
    pick = rng.permutation(spend)
    cursor = 0

    def take(k: int) -> np.ndarray:
        nonlocal cursor
        got = pick[cursor : cursor + k]
        cursor += k
        return got

    left_out = take(PLANTS["missing_in_ledger"])
    changed = take(PLANTS["amount_mismatch"])
    nudged = take(WITHIN_TOLERANCE)
    doubled = take(PLANTS["duplicate_ledger"])
    keep = np.setdiff1d(spend, left_out)
    led_quota = quota.copy()
    led_quota[changed] += rng.integers(2, 50_000, len(changed))
    led_quota[nudged] += 1
    ledger = pd.DataFrame(
        {
            "log_id": ids[keep],
            "created_at": created[keep],
            "type": types[keep],
            "token_name": logs["token_name"].to_numpy()[keep],
            "model_name": logs["model_name"].to_numpy()[keep],
            "quota": led_quota[keep],
        }
    )
    extra_ids = np.arange(rows * 3, rows * 3 + PLANTS["missing_in_logs"], dtype=np.int64)
    ghosts = pd.DataFrame(
        {
            "log_id": extra_ids,
            "created_at": rng.integers(start, end, len(extra_ids)),
            "type": 2,
            "token_name": "team-00",
            "model_name": "gpt-4o",
            "quota": rng.integers(1, 100_000, len(extra_ids)),
        }
    )
    n_oop = PLANTS["out_of_period"]
    oop_ids = np.arange(rows * 4, rows * 4 + n_oop, dtype=np.int64)
    outside = pd.DataFrame(
        {
            "log_id": oop_ids,
            "created_at": np.where(np.arange(n_oop) % 2 == 0, start - 60, end + 60),
            "type": 2,
            "token_name": "team-01",
            "model_name": "gpt-4o",
            "quota": rng.integers(1, 100_000, n_oop),
        }
    )
    dups = ledger[ledger["log_id"].isin(ids[doubled])]
    ledger = pd.concat([ledger, ghosts, outside, dups], ignore_index=True)
    ledger = ledger.iloc[rng.permutation(len(ledger))].reset_index(drop=True)
    # Finance-shaped text: ISO times with offset, type names, a thousands separator.
    local = pd.to_datetime(ledger["created_at"], unit="s", utc=True).dt.tz_convert(TZ)
    text = local.dt.strftime("%Y-%m-%dT%H:%M:%S+08:00")
    ledger["created_at"] = text
    ledger["type"] = ledger["type"].map({2: "consume", 6: "refund", 1: "topup"})
    ledger["quota"] = ledger["quota"].map("{:,}".format)
    ledger.to_csv(out / "ledger.csv", index=False)
    return dict(PLANTS)


def measure(out: Path) -> dict[str, object]:
    """The measured stage (run in a fresh process): load the ledger, then match it."""
    from reconcile.books.ledger import load_ledger
    from reconcile.core.findings import by_category
    from reconcile.match.ledger import match_ledger
    from reconcile.pricing.rules import Rules

    period = parse_period("2026-10", None, None, TZ)
    logs = pd.read_parquet(out / "logs.parquet")
    rss_logs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rules = Rules()
    t0 = time.perf_counter()
    ledger = load_ledger(out / "ledger.csv", rules, period.tz)
    t1 = time.perf_counter()
    rss_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    findings = match_ledger(logs, ledger, period, rules)
    t2 = time.perf_counter()
    rss_match = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    counts = {k: v["count"] for k, v in by_category(findings).items() if v["count"]}
    return {
        "logs": len(logs),
        "ledger_rows": len(ledger.rows),
        "unreadable": len(ledger.unreadable),
        "load_s": round(t1 - t0, 3),
        "match_s": round(t2 - t1, 3),
        "peak_rss_mb_after_logs": round(rss_logs / 1024, 1),
        "peak_rss_mb_after_load": round(rss_load / 1024, 1),
        "peak_rss_mb_after_match": round(rss_match / 1024, 1),
        "found": counts,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        planted = build(args.rows, args.seed, out)
        size = (out / "ledger.csv").stat().st_size
        print(
            f"built {args.rows:,} logs + ledger ({size / 1e6:.1f} MB CSV) in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        child = subprocess.run(
            [sys.executable, __file__, "--measure", str(out)],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"logs:                 {result['logs']:,}")
    print(f"ledger rows loaded:   {result['ledger_rows']:,} ({result['unreadable']} unreadable)")
    print(f"load_ledger:          {result['load_s']:.3f} s")
    print(f"match_ledger:         {result['match_s']:.3f} s")
    print(
        f"peak RSS (ru_maxrss): {result['peak_rss_mb_after_logs']:.0f} MB with logs read, "
        f"{result['peak_rss_mb_after_load']:.0f} MB after load, "
        f"{result['peak_rss_mb_after_match']:.0f} MB after match"
    )
    found = result["found"]
    ok = True
    for category, want in planted.items():
        got = found.get(category, 0)
        mark = "ok" if got == want else "MISMATCH"
        ok &= got == want
        print(f"  {category:<18} planted {want:>6,}  found {got:>6,}  {mark}")
    for category, got in found.items():
        if category not in planted:
            ok = False
            print(f"  {category:<18} planted {0:>6}  found {got:>6,}  UNEXPECTED")
    print("all planted discrepancies found exactly" if ok else "DISCREPANCY COUNTS DIFFER")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
