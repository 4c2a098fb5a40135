"""Loading a large ledger: parsed whole against read in pieces (reconcile/books/pieces.py).

    ./dev python benchmarks/bench_ledger.py LEDGER.csv [--modes whole,pieces]

Each mode loads the file in a fresh child process and prints its seconds, CPU seconds, peak
resident memory (ru_maxrss, with the process's own before reading), the rows frame's size and
the load average. Use synth_month.py's ledger.csv (bench_engine.py --work DIR builds one).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from reconcile.books.book import close_book
from reconcile.books.ledger import load_ledger, open_ledger, read_rows
from reconcile.core.period import parse_period
from reconcile.pricing.rules import load_rules

RULES = Path(__file__).resolve().parents[1] / "reconcile" / "demo" / "data" / "rules.toml"


def child(path: Path, mode: str) -> None:
    rules = load_rules(RULES)
    tz = parse_period("2026-10", None, None, "Asia/Shanghai").tz
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t, cpu = time.perf_counter(), time.process_time()
    if mode == "pieces":
        ledger = load_ledger(path, rules, tz)  # in pieces where that reads it as whole
    else:
        book = open_ledger(path, rules, None)
        ledger = close_book(book, *read_rows(book, rules, tz))
        del book
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    frame = ledger.rows.memory_usage(deep=True).sum() / 2**20
    print(
        f"{mode:<7} rows {len(ledger.rows):,}  {time.perf_counter() - t:6.1f} s  "
        f"CPU {time.process_time() - cpu:5.1f} s  peak RSS {peak:,.0f} MB (before {before:,.0f})  "
        f"frame {frame:,.0f} MB  load average {'/'.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ledger", type=Path)
    ap.add_argument("--modes", default="whole,pieces")
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        child(args.ledger, args.child)
        return
    print(f"{args.ledger}: {args.ledger.stat().st_size / 1e6:,.0f} MB")
    for mode in args.modes.split(","):
        cmd = [sys.executable, __file__, str(args.ledger), "--child", mode]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
