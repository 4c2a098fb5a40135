"""End to end from a snapshot: N logs and an N-row ledger, timed stage by stage.

    ./dev python benchmarks/bench_end_to_end.py [--logs 1000000] [--work DIR]

Builds a synthetic month (synth_month.py: consume logs over several models and groups, a
ledger with a few thousand planted problems) as a snapshot, or reuses the one in DIR, then
runs what `reconcile run --from-snapshot` runs — read snapshot, load ledger, price, match,
write the report — printing the seconds of each stage, the total and the peak resident
memory of the process. Price and match run on the month in one piece, stage by stage, and
again by day as the run's runner does it (timed apart, not in the total), which must give
the same findings.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from synth_month import build

from reconcile.books.ledger import load_ledger
from reconcile.books.problems import unreadable_findings
from reconcile.core import findings
from reconcile.core.aggregates import LogAggregates
from reconcile.core.logstore import FrameStore
from reconcile.core.period import parse_period
from reconcile.core.results import InputFile, RunResult
from reconcile.core.schema import LOG_DTYPES
from reconcile.engines import LocalRunner
from reconcile.match.ledger import match_ledger
from reconcile.pipeline import write_report
from reconcile.pricing.rules import load_rules
from reconcile.pricing.stage import price_logs
from reconcile.sources.snapshot import read_snapshot

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "reconcile" / "demo" / "data" / "rules.toml"
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-20250514", "deepseek-chat", "dall-e-3"]


def synth_logs(n: int, period_start: int, period_end: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    created = np.sort(rng.integers(period_start, period_end, n))
    prompt = rng.integers(100, 8000, n)
    completion = rng.integers(10, 2000, n)
    model = rng.choice(MODELS, n, p=[0.3, 0.3, 0.2, 0.15, 0.05])
    group = rng.choice(["default", "vip"], n, p=[0.7, 0.3])
    df = pd.DataFrame(
        {
            "id": np.arange(1, n + 1, dtype="int64") * 3,
            "created_at": created,
            "type": 2,
            "key_ref": "key-00000001",
            "token_name": np.where(group == "vip", "batch", "prod"),
            "username": "bench",
            "model_name": model,
            "group": group,
            "quota": 0,  # set to the contract's price below, then a few are planted wrong
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "use_time": 3,
            "is_stream": True,
            "channel": 1,
            "request_id": "",
            "content": "",
            "other": "",
        }
    )
    # What a gateway records in `other`: the ratios it charged with, as new-api writes them.
    charged = {
        "gpt-4o": '"model_ratio":1.25,"completion_ratio":4,"cache_ratio":0.5',
        "gpt-4o-mini": '"model_ratio":0.06,"completion_ratio":4,"cache_ratio":0.5',
        "claude-sonnet-4-20250514": '"model_ratio":1.5,"completion_ratio":5,"cache_ratio":0.1',
        "deepseek-chat": '"model_ratio":0.135,"completion_ratio":4,"cache_ratio":0.1',
        "dall-e-3": '"model_ratio":0,"model_price":0.04',
    }
    ratios = pd.Series(model).map(charged)
    renegotiated = period_start + 14 * 86400  # the demo contract's gpt-4o-mini price change
    before = (model == "gpt-4o-mini") & (created < renegotiated)
    ratios[before] = ratios[before].str.replace('"model_ratio":0.06', '"model_ratio":0.075')
    group_ratio = np.where(group == "vip", "0.8", "1")
    df["other"] = (
        "{" + ratios + ',"group_ratio":' + group_ratio + ',"cache_tokens":0,"frt":812,'
        '"request_path":"/v1/chat/completions","user_group_ratio":-1}'
    )
    return df.astype(LOG_DTYPES)  # type: ignore[arg-type]


def write_ledger(logs: pd.DataFrame, path: Path, planted: int, tz: str) -> None:
    rng = np.random.default_rng(11)
    ledger = pd.DataFrame(
        {
            "log_id": logs["id"],
            "created_at": pd.to_datetime(logs["created_at"], unit="s", utc=True)
            .dt.tz_convert(tz)
            .dt.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "type": "consume",
            "token_name": logs["token_name"],
            "model_name": logs["model_name"],
            "quota": logs["quota"],
        }
    )
    drop = rng.choice(len(ledger), planted, replace=False)
    alter = rng.choice(np.setdiff1d(np.arange(len(ledger)), drop), planted, replace=False)
    ledger.loc[alter, "quota"] += 1000
    dup = ledger.iloc[alter[: planted // 2]]
    ledger = pd.concat([ledger.drop(index=drop), dup])
    ledger.to_csv(path, index=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--logs", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, help="build the month here, or reuse the one built")
    args = ap.parse_args()
    tz = "Asia/Shanghai"
    period = parse_period("2026-10", None, None, tz)
    work = args.work or Path(tempfile.mkdtemp(prefix="reconcile-bench-"))
    if not (work / "snap" / "manifest.json").is_file():
        build(args.logs, work)  # synth_month: the month day by day, as bench_engine's
    print(f"inputs: {work}, ledger {(work / 'ledger.csv').stat().st_size / 1e6:.0f} MB")

    times: dict[str, float] = {}

    def timed(name: str, fn):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - t
        return out

    rules = timed("rules", lambda: load_rules(RULES))
    snap = timed("read snapshot", lambda: read_snapshot(work / "snap"))
    ledger = timed("load ledger", lambda: load_ledger(work / "ledger.csv", rules, period.tz))
    pricing = timed("price", lambda: price_logs(snap.logs, rules, period.tz))
    frames = timed(
        "match",
        lambda: [match_ledger(snap.logs, ledger, period, rules), unreadable_findings(ledger)],
    )
    store = FrameStore(snap.logs, period)
    by_day = timed("price+match by day", lambda: LocalRunner().stage(store, ledger, None, rules))
    found = timed("finalize", lambda: findings.finalize([pricing.findings, *frames], rules, ledger))
    same = findings.finalize(by_day.frames, rules, ledger).equals(found)
    result = RunResult(
        fetch=snap,
        rules=rules,
        pricing=pricing,
        findings=found,
        inputs=[InputFile("ledger", str(work / "ledger.csv"), ledger.sha256)],
        fail_on="error",
        status="fail" if findings.reaches(found, "error") else "pass",
        aggregates=LogAggregates.of(snap.logs, pricing.priced, period),
        ledger=ledger,
    )
    timed("write report", lambda: write_report(result, work / "out"))
    total = sum(t for name, t in times.items() if name != "price+match by day")
    t = time.perf_counter()
    found.to_excel(work / "to_excel.xlsx", index=False)
    to_excel = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for name, secs in times.items():
        print(f"  {name:<14} {secs:8.2f} s")
    print(f"  {'total':<14} {total:8.2f} s   (target < 60 s)")
    print(
        f"  (pandas to_excel of the same {len(found):,} discrepancy rows alone: {to_excel:.2f} s)"
    )
    print(f"  (price+match by day, the run's runner, gave the same findings: {same})")
    print(f"peak RSS {peak_mb:,.0f} MB (target < 3,072 MB)   findings {len(found):,}")
    print(f"load average {os.getloadavg()}")
    summary = json.loads((work / "out" / "summary.json").read_text())
    print(
        "discrepancies:", {k: v["count"] for k, v in summary["discrepancies"].items() if v["count"]}
    )
    print(
        "workbook:", f"{(work / 'out' / 'reconciliation-2026-10.xlsx').stat().st_size / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
