"""A synthetic month of N consume logs and an N-row ledger, built day by day.

    ./dev python benchmarks/synth_month.py --logs 10000000 --out DIR

The logs are bench_end_to_end's (several models and groups, `other` as new-api writes it),
charged the demo contract's price with a few planted overcharges; the ledger has one row per
log with planted problems (rows dropped, amounts altered, rows booked twice). Each local day
is generated with NumPy and Arrow, priced by the stage code (the ledger must agree with the
contract), written as the snapshot's file of that day (SnapshotWriter) and appended to the
ledger CSV, and dropped: the month is never held, so 10M logs build in minutes in little
memory, where building one pandas frame and pricing it whole took 391 s for 3M.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from reconcile.core.logstore import day_edges
from reconcile.core.period import parse_period
from reconcile.core.results import FetchResult
from reconcile.core.schema import LOG_DTYPES, empty_logs
from reconcile.pricing.rules import load_rules
from reconcile.pricing.stage import price_logs
from reconcile.sources.snapshot import SnapshotWriter

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "reconcile" / "demo" / "data" / "rules.toml"
TZ = "Asia/Shanghai"
KEY = "key-00000001"
MODELS = np.array(
    ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-20250514", "deepseek-chat", "dall-e-3"]
)
SHARES = [0.3, 0.3, 0.2, 0.15, 0.05]
CHARGED = [  # the ratios the gateway charged with, as new-api writes them in `other`
    '"model_ratio":1.25,"completion_ratio":4,"cache_ratio":0.5',
    '"model_ratio":0.06,"completion_ratio":4,"cache_ratio":0.5',
    '"model_ratio":1.5,"completion_ratio":5,"cache_ratio":0.1',
    '"model_ratio":0.135,"completion_ratio":4,"cache_ratio":0.1',
    '"model_ratio":0,"model_price":0.04',
]
BEFORE_MINI = '"model_ratio":0.075,"completion_ratio":4,"cache_ratio":0.5'  # price change
TAIL = ',"cache_tokens":0,"frt":812,"request_path":"/v1/chat/completions","user_group_ratio":-1}'
LEDGER_SCHEMA = pa.schema(
    [
        ("log_id", pa.int64()),
        ("created_at", pa.string()),
        ("type", pa.string()),
        ("token_name", pa.string()),
        ("model_name", pa.string()),
        ("quota", pa.int64()),
    ]
)


def day_logs(rng: np.random.Generator, n: int, lo: int, hi: int, first_id: int) -> pd.DataFrame:
    """`n` consume logs created in [lo, hi), ids from `first_id` step 3, in snapshot order."""
    model = rng.choice(len(MODELS), n, p=SHARES)
    vip = rng.random(n) < 0.3
    created = np.sort(rng.integers(lo, hi, n))
    ids = first_id + 3 * np.arange(n, dtype=np.int64)
    charged = np.array(CHARGED, dtype=object)[model]
    return pd.DataFrame(
        {
            "id": ids,
            "created_at": created,
            "type": np.full(n, 2, np.int64),
            "key_ref": KEY,
            "token_name": np.where(vip, "batch", "prod"),
            "username": "bench",
            "model_name": MODELS[model],
            "group": np.where(vip, "vip", "default"),
            "quota": np.zeros(n, np.int64),
            "prompt_tokens": rng.integers(100, 8000, n),
            "completion_tokens": rng.integers(10, 2000, n),
            "use_time": np.full(n, 3, np.int64),
            "is_stream": np.ones(n, bool),
            "channel": np.ones(n, np.int64),
            "request_id": "",
            "content": "",
            "other": charged,  # finished below, once the period's dates are known
            "row_key": [f"{i:016x}-0" for i in ids.tolist()],
        }
    )


def finish_other(logs: pd.DataFrame, renegotiated: int) -> None:
    before = (logs["model_name"] == "gpt-4o-mini").to_numpy() & (
        logs["created_at"].to_numpy() < renegotiated
    )
    ratios = logs["other"].to_numpy(dtype=object)
    ratios[before] = BEFORE_MINI
    group = np.where(logs["group"].to_numpy(dtype=object) == "vip", "0.8", "1")
    logs["other"] = pc.binary_join_element_wise(
        "{", pa.array(ratios, pa.string()), ',"group_ratio":', pa.array(group), TAIL, ""
    ).to_pandas()


def iso_local(seconds: np.ndarray[Any, Any], offset_hours: int = 8) -> pa.Array:
    """ISO times with the fixed offset of the bench's time zone (Asia/Shanghai has no DST)."""
    local = (seconds + offset_hours * 3600).astype("datetime64[s]")
    text = np.datetime_as_string(local, unit="s").astype(object)
    return pc.binary_join_element_wise(pa.array(text, pa.string()), f"+{offset_hours:02d}00", "")


def ledger_rows(logs: pd.DataFrame, rng: np.random.Generator, planted: int) -> pa.Table:
    """One ledger row per log; `planted` rows dropped, as many altered, half as many twice."""
    n = len(logs)
    keep = np.ones(n, bool)
    quota = logs["quota"].to_numpy(dtype=np.int64).copy()
    if planted and n > 3 * planted:
        picked = rng.choice(n, 2 * planted, replace=False)
        drop, alter = picked[:planted], picked[planted:]
        keep[drop] = False
        quota[alter] += 1000
        rows = np.concatenate([np.flatnonzero(keep), alter[: planted // 2]])
    else:
        rows = np.arange(n)
    created = logs["created_at"].to_numpy(dtype=np.int64)[rows]
    return pa.Table.from_pydict(
        {
            "log_id": pa.array(logs["id"].to_numpy(dtype=np.int64)[rows]),
            "created_at": iso_local(created),
            "type": pa.array(np.full(len(rows), "consume", dtype=object), pa.string()),
            "token_name": pa.array(logs["token_name"].to_numpy(dtype=object)[rows], pa.string()),
            "model_name": pa.array(logs["model_name"].to_numpy(dtype=object)[rows], pa.string()),
            "quota": pa.array(quota[rows]),
        },
        schema=LEDGER_SCHEMA,
    )


def build(n: int, out: Path, planted: int = 2000, seed: int = 7) -> dict[str, float]:
    """Write `out/snap` (a snapshot) and `out/ledger.csv`; returns seconds per step."""
    period = parse_period("2026-10", None, None, TZ)
    rules = load_rules(RULES)
    edges = day_edges(period)
    days = len(edges) - 1
    per_day = np.full(days, n // days)
    per_day[: n % days] += 1
    rng = np.random.default_rng(seed)
    writer = SnapshotWriter(out / "snap", period)
    ledger_path = out / "ledger.csv"
    times = {"generate": 0.0, "price": 0.0, "write": 0.0}
    next_id = 3
    csv_options = pacsv.WriteOptions(quoting_style="none")
    with pacsv.CSVWriter(ledger_path, LEDGER_SCHEMA, write_options=csv_options) as ledger:
        for i in range(days):
            t = time.perf_counter()
            logs = day_logs(rng, int(per_day[i]), int(edges[i]), int(edges[i + 1]), next_id)
            next_id += 3 * len(logs)
            finish_other(logs, period.start_ts + 14 * 86400)
            times["generate"] += time.perf_counter() - t
            t = time.perf_counter()
            typed = logs.astype({**LOG_DTYPES, "row_key": "string"})
            fair = price_logs(typed, rules, period.tz).priced["expected_quota"]
            quota = fair.to_numpy(dtype=np.int64)
            over = rng.choice(len(logs), planted // (2 * days), replace=False)
            quota[over] += 777
            logs["quota"] = quota
            times["price"] += time.perf_counter() - t
            t = time.perf_counter()
            writer.add(logs.astype({**LOG_DTYPES, "row_key": "string"}))
            writer.flush(int(edges[i + 1]))
            ledger.write_table(ledger_rows(logs, rng, planted // days))
            times["write"] += time.perf_counter() - t
    fetched_at = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    writer.finish(FetchResult(period, empty_logs(), [], [KEY], fetched_at))
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--logs", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    t = time.perf_counter()
    steps = build(args.logs, args.out)
    print(f"{args.logs:,} logs + ledger in {time.perf_counter() - t:.1f} s: {steps}")


if __name__ == "__main__":
    main()
