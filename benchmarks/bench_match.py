"""Benchmark: load a 1,000,000-row ledger CSV and match it against 1,000,000 logs.

Usage: ./dev python benchmarks/bench_match.py [--rows N] [--seed S] [--naive-rows N]

Two ledgers are matched: one keyed by log_id, and one with no ids at all (a customer's own
books: time, type, token, model, token counts, quota), which is paired by content
(match.tolerant). The second is run side by side with the naive alternative: a pandas merge
on the keys, the time window applied to the merged pairs, and a Python loop taking pairs
closest first; it is run at --naive-rows (default: the same size).

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
import os
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


#: Planted in the ledger without ids (each row's time is 0-3 s before its log's).
NOID_PLANTS = {
    "missing_in_ledger": 2000,
    "missing_in_logs": 1500,  # rows whose token counts no log has
    "amount_mismatch": 2500,
    "duplicate_ledger": 1000,  # an identical second row
    "out_of_period": 800,
}


def build_noids(rows: int, seed: int, out: Path, name: str = "noids.csv") -> dict[str, int]:
    """Write a ledger without ids for logs.parquet (already in `out`): content only."""
    rng = np.random.default_rng(seed + 1)
    period = parse_period("2026-10", None, None, TZ)
    logs = pd.read_parquet(out / "logs.parquet")
    types = logs["type"].to_numpy()
    spend = np.flatnonzero(types != 5)
    pick = rng.permutation(spend)
    left_out = pick[: NOID_PLANTS["missing_in_ledger"]]
    changed = pick[len(left_out) : len(left_out) + NOID_PLANTS["amount_mismatch"]]
    keep = np.setdiff1d(spend, left_out)
    quota = logs["quota"].to_numpy().copy()
    quota[changed] += rng.integers(2, 50_000, len(changed))
    cols = ["created_at", "type", "token_name", "model_name", "prompt_tokens", "completion_tokens"]
    ledger = logs.iloc[keep][cols].reset_index(drop=True)
    early = ledger["created_at"] - rng.integers(0, 4, len(ledger))
    ledger["created_at"] = np.maximum(early, period.start_ts)  # the books' clock runs first
    ledger["quota"] = quota[keep]
    ghosts = ledger.sample(NOID_PLANTS["missing_in_logs"], random_state=seed).copy()
    ghosts["prompt_tokens"] = rng.integers(10_000, 20_000, len(ghosts))  # no log has these
    n_oop = NOID_PLANTS["out_of_period"]
    outside = ledger.sample(n_oop, random_state=seed + 1).copy()
    outside["created_at"] = np.where(
        np.arange(n_oop) % 2 == 0, period.start_ts - 3600, period.end_ts + 3600
    )
    dups = ledger.sample(NOID_PLANTS["duplicate_ledger"], random_state=seed + 2)
    ledger = pd.concat([ledger, ghosts, outside, dups], ignore_index=True)
    ledger = ledger.iloc[rng.permutation(len(ledger))].reset_index(drop=True)
    local = pd.to_datetime(ledger["created_at"], unit="s", utc=True).dt.tz_convert(TZ)
    ledger["created_at"] = local.dt.strftime("%Y-%m-%dT%H:%M:%S+08:00")
    ledger["type"] = ledger["type"].map({2: "consume", 6: "refund", 1: "topup"})
    ledger.to_csv(out / name, index=False)
    return dict(NOID_PLANTS)


def measure_noids(out: Path, name: str = "noids.csv") -> dict[str, object]:
    """Load the ledger without ids and pair it by content (a fresh process)."""
    from reconcile.books.ledger import load_ledger
    from reconcile.core.findings import by_category
    from reconcile.match.ledger import match_ledger
    from reconcile.pricing.rules import Rules

    period = parse_period("2026-10", None, None, TZ)
    logs = pd.read_parquet(out / "logs.parquet")
    rss_logs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rules = Rules()
    t0 = time.perf_counter()
    ledger = load_ledger(out / name, rules, period.tz)
    t1 = time.perf_counter()
    findings = match_ledger(logs, ledger, period, rules, id_scheme="position")
    t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    counts = {k: v["count"] for k, v in by_category(findings).items() if v["count"]}
    return {
        "ledger_rows": len(ledger.rows),
        "load_s": round(t1 - t0, 3),
        "match_s": round(t2 - t1, 3),
        "peak_rss_mb_after_logs": round(rss_logs / 1024, 1),
        "peak_rss_mb": round(rss / 1024, 1),
        "found": counts,
    }


def measure_naive(out: Path, name: str) -> dict[str, object]:
    """The naive alternative: merge on the keys, filter the window, pair in a Python loop."""
    period = parse_period("2026-10", None, None, TZ)
    logs = pd.read_parquet(out / "logs.parquet")
    t0 = time.perf_counter()
    ledger = pd.read_csv(out / name)
    ledger["created_at"] = pd.to_datetime(ledger["created_at"], format="ISO8601").map(
        lambda t: int(t.timestamp())
    )
    ledger["type"] = ledger["type"].map({"consume": 2, "refund": 6, "topup": 1})
    ledger["line"] = np.arange(len(ledger)) + 2
    t1 = time.perf_counter()
    keys = ["type", "token_name", "model_name", "prompt_tokens", "completion_tokens"]
    right = logs[["id", "created_at", "quota", *keys]].astype({"token_name": object})
    right = right.astype({"model_name": object})
    merged = ledger.merge(right, on=keys, suffixes=("", "_log"))
    dt = merged["created_at_log"] - merged["created_at"]
    merged = merged[(dt >= -1) & (dt <= 5)].assign(adt=dt.abs(), before=dt < 0)
    merged = merged.sort_values(["adt", "before", "line", "id"], kind="stable")
    paired_rows: set[int] = set()
    paired_logs: set[int] = set()
    wrong = 0
    for line, log_id, q, q_log in zip(
        merged["line"], merged["id"], merged["quota"], merged["quota_log"], strict=True
    ):
        if line in paired_rows or log_id in paired_logs:
            continue
        paired_rows.add(line)
        paired_logs.add(log_id)
        wrong += abs(q - q_log) > 1
    t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    inside = (logs["created_at"] >= period.start_ts) & (logs["type"] != 5)
    return {
        "ledger_rows": len(ledger),
        "candidate_pairs": len(merged),
        "pairs": len(paired_rows),
        "amount_mismatch": int(wrong),
        "unpaired_logs": int(inside.sum()) - len(paired_logs),
        "load_s": round(t1 - t0, 3),
        "match_s": round(t2 - t1, 3),
        "peak_rss_mb": round(rss / 1024, 1),
    }


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


def profile(rows: int, seed: int) -> None:
    """Where the time of pairing by content goes (cProfile, top 25)."""
    import cProfile
    import pstats

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        build(rows, seed, out)
        build_noids(rows, seed, out)
        cProfile.runctx("measure_noids(out)", globals(), {"out": out}, "/tmp/noids.prof")
    pstats.Stats("/tmp/noids.prof").sort_stats("cumulative").print_stats(25)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--naive-rows", type=int, default=0, help="0: the same as --rows")
    parser.add_argument("--skip-ids", action="store_true", help="only the ledger without ids")
    parser.add_argument("--profile", action="store_true", help="profile pairing by content")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stage", default="ids", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile:
        profile(args.rows, args.seed)
        return 0
    if args.measure:
        stages = {
            "ids": lambda: measure(args.measure),
            "noids": lambda: measure_noids(args.measure),
            "naive": lambda: measure_naive(args.measure, "naive.csv"),
            "amounts": lambda: measure_noids(args.measure, "amounts.csv"),
        }
        print(json.dumps(stages[args.stage]()))
        return 0
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        planted = build(args.rows, args.seed, out)
        size = (out / "ledger.csv").stat().st_size
        print(
            f"built {args.rows:,} logs + ledger ({size / 1e6:.1f} MB CSV) in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        if not args.skip_ids:
            ok &= _report_ids(_child(out, "ids"), planted)
        noid_planted = build_noids(args.rows, args.seed, out)
        ok &= _report_noids(_child(out, "noids"), noid_planted, args.rows)
        # The same books without token counts: the amount becomes a pairing key, so the
        # planted wrong amounts become missing pairs (counts printed, not checked).
        books = pd.read_csv(out / "noids.csv")
        books.drop(columns=["prompt_tokens", "completion_tokens"]).to_csv(
            out / "amounts.csv", index=False
        )
        amounts = _child(out, "amounts")
        print(f"the same rows without token counts (amount as a key), {args.rows:,} logs:")
        print(f"  load_ledger:          {amounts['load_s']:.3f} s")
        print(f"  match_ledger:         {amounts['match_s']:.3f} s")
        print(f"  peak RSS (ru_maxrss): {amounts['peak_rss_mb']:.0f} MB")
        print(f"  found: {amounts['found']}")
        naive_rows = args.naive_rows or args.rows
        if naive_rows != args.rows:
            build(naive_rows, args.seed, out)
        build_noids(naive_rows, args.seed, out, "naive.csv")
        naive = _child(out, "naive")
        print(f"naive, {naive_rows:,} logs x {naive['ledger_rows']:,} rows without ids:")
        print(f"  read CSV + parse:     {naive['load_s']:.3f} s")
        print(f"  merge + window + loop: {naive['match_s']:.3f} s")
        print(f"  peak RSS:             {naive['peak_rss_mb']:.0f} MB")
        print(
            f"  {naive['candidate_pairs']:,} candidate pairs, {naive['pairs']:,} paired, "
            f"{naive['amount_mismatch']:,} with another amount, "
            f"{naive['unpaired_logs']:,} logs left (no ambiguity, duplicate or period check)"
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average at the end (1, 5, 15 min): {load} on {os.cpu_count()} cores")
    print("all planted discrepancies found exactly" if ok else "DISCREPANCY COUNTS DIFFER")
    return 0 if ok else 1


def _child(out: Path, stage: str) -> dict[str, object]:
    run = subprocess.run(
        [sys.executable, __file__, "--measure", str(out), "--stage", stage],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def _compare(found: dict[str, int], planted: dict[str, int]) -> bool:
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
    return ok


def _report_ids(result: dict[str, object], planted: dict[str, int]) -> bool:
    print(f"logs:                 {result['logs']:,}")
    print(f"ledger rows loaded:   {result['ledger_rows']:,} ({result['unreadable']} unreadable)")
    print(f"load_ledger:          {result['load_s']:.3f} s")
    print(f"match_ledger:         {result['match_s']:.3f} s")
    print(
        f"peak RSS (ru_maxrss): {result['peak_rss_mb_after_logs']:.0f} MB with logs read, "
        f"{result['peak_rss_mb_after_load']:.0f} MB after load, "
        f"{result['peak_rss_mb_after_match']:.0f} MB after match"
    )
    return _compare(result["found"], planted)  # type: ignore[arg-type]


def _report_noids(result: dict[str, object], planted: dict[str, int], rows: int) -> bool:
    print(f"ledger without ids, {rows:,} logs x {result['ledger_rows']:,} rows (by content):")
    print(f"  load_ledger:          {result['load_s']:.3f} s")
    print(f"  match_ledger:         {result['match_s']:.3f} s")
    print(
        f"  peak RSS (ru_maxrss): {result['peak_rss_mb_after_logs']:.0f} MB with logs read, "
        f"{result['peak_rss_mb']:.0f} MB in all"
    )
    return _compare(result["found"], planted)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
