"""The report writers on a large month: N findings, M priced consume logs.

    ./dev python benchmarks/bench_report.py [--findings 200000] [--logs 500000]
    ./dev python benchmarks/bench_report.py --rerun [--findings 100000] [--logs 1000000]

`--rerun` times the whole `reconcile run --from-snapshot` (read the snapshot, read the ledger,
price, match, write every output) on a synthetic month planted with about N findings, side by
side with `pandas.DataFrame.to_excel` of that run's findings alone, each in a fresh forked
process: seconds and peak extra resident memory; and the size of the run's findings table
(pandas' deep count: the money columns are exact decimals, see core/money.py). Without it:

Builds a synthetic computed run in memory (no gateway, no files read), then writes, each in a
fresh forked process so one measurement cannot inflate the next:

- summary.json (build_summary),
- discrepancies.csv,
- the review workbook (write_workbook: every sheet, streamed),
- the Discrepancies sheet alone, written the same way (styled, safe, streamed),
- for comparison, `pandas.DataFrame.to_excel` of the same discrepancy rows only (one sheet,
  no styles, and unsafe: it writes text starting with `=` as formulas).

For each it prints wall seconds, the peak extra resident memory of the writing process
(VmHWM after resetting it at the start, minus the resident size then) and the file size.
The machine may be shared: figures are noisy, compare them within one run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from reconcile.core import findings as findings_mod
from reconcile.core.aggregates import LogAggregates
from reconcile.core.period import parse_period
from reconcile.core.results import FetchResult, InputFile, Ledger, Pricing, RunResult, WindowRecord
from reconcile.core.schema import CATEGORIES, CONSUME, EXPLAIN, LOG_DTYPES, SEVERITY, findings_frame
from reconcile.pricing.rules import ModelRule, Rules
from reconcile.report import workbook as workbook_mod
from reconcile.report.csvfile import write_discrepancies_csv
from reconcile.report.summary import build_summary, summary_json
from reconcile.report.workbook import write_workbook
from reconcile.report.xlsx import Book

TZ = "Asia/Shanghai"
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "deepseek-chat", "dall-e-3", "qwen-max"]


def synth_result(n_findings: int, n_logs: int, seed: int = 11) -> RunResult:
    rng = np.random.default_rng(seed)
    period = parse_period("2026-10", None, None, TZ)
    ids = np.arange(1, n_logs + 1, dtype="int64") * 3
    created = np.sort(rng.integers(period.start_ts, period.end_ts, n_logs))
    model = rng.choice(MODELS, n_logs)
    tokens = np.array([f"team-{i:02d}" for i in range(40)])
    token = rng.choice(tokens, n_logs)
    quota = rng.integers(50, 20_000, n_logs)
    logs = pd.DataFrame(
        {
            "id": ids,
            "created_at": created,
            "type": CONSUME,
            "key_ref": np.where(np.char.endswith(token.astype(str), "0"), "key-a1", "key-b2"),
            "token_name": token,
            "username": "bench",
            "model_name": model,
            "group": "default",
            "quota": quota,
            "prompt_tokens": quota,
            "completion_tokens": quota // 4,
            "use_time": 2,
            "is_stream": False,
            "channel": 1,
            "request_id": "",
            "content": "",
            "other": "{}",
        }
    ).astype(LOG_DTYPES)
    unpriced = model == "qwen-max"
    diff = np.where(rng.random(n_logs) < 0.02, rng.integers(-30, 30, n_logs), 0)
    priced = pd.DataFrame(
        {
            "id": ids,
            "rule": np.where(unpriced, "", np.char.add(model.astype(str), "*")),
            "expected_quota": pd.array(np.where(unpriced, 0, quota - diff), dtype="Int64"),
            "diff_quota": pd.array(diff, dtype="Int64"),
            "status": np.where(unpriced, "unpriced", np.where(diff != 0, "mismatch", "ok")),
            "reason": "",
        }
    )
    priced.loc[unpriced, ["expected_quota", "diff_quota"]] = pd.NA
    ledger_rows = pd.DataFrame(
        {
            "line": np.arange(2, n_logs + 2),
            "log_id": pd.array(ids, dtype="Int64"),
            "request_id": pd.array([""] * n_logs, dtype="string"),
            "created_at": pd.array(created, dtype="Int64"),
            "type": CONSUME,
            "token_name": pd.array(token, dtype="string"),
            "model_name": pd.array(model, dtype="string"),
            "quota": quota,
        }
    )
    pick = rng.integers(0, n_logs, n_findings)
    cats = rng.choice(list(CATEGORIES[:7]), n_findings)
    tz = ZoneInfo(TZ)
    stamps = [datetime.fromtimestamp(int(t), tz).isoformat() for t in created[pick]]
    found = findings_frame(
        pd.DataFrame(
            {
                "category": cats,
                "severity": [SEVERITY[c] for c in cats],
                "source": "ledger",
                "log_id": ids[pick],
                "ledger_line": pick + 2,
                "request_id": "",
                "created_at": stamps,
                "type": "consume",
                "token_name": token[pick],
                "model_name": model[pick],
                "group": "default",
                "log_quota": quota[pick],
                "ledger_quota": quota[pick] + 5,
                "expected_quota": quota[pick],
                "diff_quota": rng.integers(0, 20_000, n_findings),
                "explanation": [EXPLAIN[c] for c in cats],
            }
        )
    )
    rules = Rules(
        model=[ModelRule(match=f"{m}*", model_ratio=Decimal("1.25")) for m in MODELS[:-1]],
        currency={"CNY": Decimal("7.2")},
    )
    final = findings_mod.finalize([found], rules)
    expected = int(priced["expected_quota"].dropna().sum())
    ledger = Ledger(
        kind="ledger",
        path="ledger.csv",
        sha256="0" * 64,
        rows=ledger_rows,
        unreadable=pd.DataFrame({"line": [], "field": [], "reason": [], "raw": []}),
    )
    fetch = FetchResult(
        period=period,
        logs=logs,
        windows=[WindowRecord("key-a1", period.start_ts, period.end_ts - 1, n_logs, n_logs, 1, 1)],
        key_refs=["key-a1", "key-b2"],
        fetched_at=datetime(2026, 11, 1, 2, 0, tzinfo=tz),
        base_url="https://gateway.invalid",
    )
    return RunResult(
        fetch=fetch,
        rules=rules,
        pricing=Pricing(priced=priced, findings=final.iloc[0:0], expected_quota=expected),
        findings=final,
        inputs=[InputFile("ledger", "ledger.csv", "0" * 64)],
        fail_on="error",
        status="fail",
        aggregates=LogAggregates.of(logs, priced, period),
        ledger=ledger,
    )


def discrepancies_only(result: RunResult, path: Path) -> None:
    """The Discrepancies sheet alone, as this tool writes it: the like-for-like comparison."""
    book = Book(result.fetch.fetched_at, currency=result.rules.report_currency)
    workbook_mod._findings_sheet(book, "findings", result.findings)
    book.save(path)


def _status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _measure(job: Callable[[], None], out: mp.Queue) -> None:  # type: ignore[type-arg]
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")  # reset the peak resident size (VmHWM) to the current size
    except OSError:
        pass
    base = _status("VmRSS")
    start = time.perf_counter()
    job()
    seconds = time.perf_counter() - start
    out.put((seconds, max(_status("VmHWM") - base, 0)))


def measure(job: Callable[[], None]) -> tuple[float, int]:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(job, queue))
    proc.start()
    result: tuple[float, int] = queue.get()
    proc.join()
    return result


def rerun(n_findings: int, n_logs: int) -> None:
    """The whole rerun from a snapshot against to_excel of its findings, side by side."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_end_to_end import RULES, synth_logs, write_ledger  # the same synthetic month

    from reconcile import pipeline
    from reconcile.pricing.rules import load_rules
    from reconcile.pricing.stage import price_logs
    from reconcile.settings import Settings
    from reconcile.sources.snapshot import write_snapshot

    tz = TZ
    period = parse_period("2026-10", None, None, tz)
    work = Path(tempfile.mkdtemp(prefix="bench-rerun-"))
    planted = n_findings // 3  # half as many overcharges, as many missing, altered, half dups
    logs = synth_logs(n_logs, period.start_ts, period.end_ts)
    rules = load_rules(RULES)
    fair = price_logs(logs, rules, period.tz).priced.set_index("id")["expected_quota"]
    logs["quota"] = logs["id"].map(fair).astype("int64")
    over = np.random.default_rng(5).choice(len(logs), planted // 2, replace=False)
    logs.loc[over, "quota"] += 777
    fetched = FetchResult(
        period=period,
        logs=logs,
        windows=[],
        key_refs=["key-00000001"],
        fetched_at=datetime(2026, 11, 1, 2, 0, tzinfo=ZoneInfo(tz)),
    )
    write_snapshot(fetched, work / "snap")
    write_ledger(logs, work / "ledger.csv", planted, tz)
    del logs, fetched, fair
    request = pipeline.RunRequest(
        period=None, rules=RULES, ledger=work / "ledger.csv", from_snapshot=work / "snap"
    )
    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    def whole_run() -> None:
        result = pipeline.compute(settings, request)
        pipeline.write_report(result, work / "out")

    print(f"{'job':48} {'seconds':>9} {'peak extra MiB':>15}")
    run_s, run_mem = measure(whole_run)
    print(
        f"{'whole rerun from the snapshot (every output)':48} {run_s:9.1f} {run_mem / 2**20:15.0f}"
    )
    result = pipeline.compute(settings, request)
    findings = result.findings
    sizes = findings.memory_usage(deep=True, index=False)
    money = [c for c in findings if c.endswith("_amount")]
    print(
        f"{'findings table (pandas deep count, MiB)':48} {'':>9} {sizes.sum() / 2**20:15.1f}"
        f"   of which {len(money)} money columns {sizes[money].sum() / 2**20:.1f}"
    )
    write_s, write_mem = measure(lambda: pipeline.write_report(result, work / "out2"))
    name = "of which writing every output (from memory)"
    print(f"{name:48} {write_s:9.1f} {write_mem / 2**20:15.0f}")
    xl_s, xl_mem = measure(
        lambda: findings.to_excel(work / "p.xlsx", index=False, engine="openpyxl")
    )
    name = f"pandas to_excel of its {len(findings):,} findings alone"
    print(f"{name:48} {xl_s:9.1f} {xl_mem / 2**20:15.0f}")
    print(
        f"rerun is {xl_s / run_s:.2f}x faster than to_excel (target >= 1.5x) and uses "
        f"{run_mem / max(xl_mem, 1):.2f} of its memory (target < 0.20); writing every output "
        f"uses {write_mem / max(xl_mem, 1):.2f} of it; {n_logs:,} logs"
    )
    print(
        f"outputs in {work} (delete when done); {os.cpu_count()} cores, shared: figures are noisy"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=200_000)
    parser.add_argument("--logs", type=int, default=500_000)
    parser.add_argument("--skip-pandas", action="store_true", help="skip the to_excel baseline")
    parser.add_argument("--rerun", action="store_true", help="time a whole rerun, see above")
    args = parser.parse_args()
    if args.rerun:
        rerun(args.findings, args.logs)
        return

    t = time.perf_counter()
    result = synth_result(args.findings, args.logs)
    print(
        f"synthetic run: {len(result.findings):,} findings, {args.logs:,} priced consume logs, "
        f"{len(result.findings['category'].unique())} categories "
        f"(built in {time.perf_counter() - t:.1f} s, "
        f"process RSS {_status('VmRSS') / 2**20:,.0f} MiB)"
    )
    out = Path(tempfile.mkdtemp(prefix="bench-report-"))
    jobs: list[tuple[str, Path, Callable[[], None]]] = [
        (
            "summary.json",
            out / "summary.json",
            lambda: (out / "summary.json").write_text(summary_json(build_summary(result))),
        ),
        (
            "discrepancies.csv",
            out / "d.csv",
            lambda: write_discrepancies_csv(result.findings, out / "d.csv"),
        ),
        ("workbook (all sheets)", out / "r.xlsx", lambda: write_workbook(result, out / "r.xlsx")),
        (
            "workbook, Discrepancies sheet only",
            out / "d.xlsx",
            lambda: discrepancies_only(result, out / "d.xlsx"),
        ),
    ]
    if not args.skip_pandas:
        jobs.append(
            (
                "pandas to_excel (findings only)",
                out / "p.xlsx",
                lambda: result.findings.to_excel(out / "p.xlsx", index=False, engine="openpyxl"),
            )
        )
    print(f"{'output':34} {'seconds':>9} {'peak extra MiB':>15} {'file MiB':>9}")
    for name, path, job in jobs:
        seconds, peak = measure(job)
        size = path.stat().st_size / 2**20
        print(f"{name:34} {seconds:9.1f} {peak / 2**20:15.0f} {size:9.1f}")
    print(f"workbook rows written for findings: {len(result.findings):,} (each finding once)")
    print(f"outputs in {out} (delete when done); {os.cpu_count()} cores, shared: figures are noisy")


if __name__ == "__main__":
    main()
