"""Runners side by side: the whole month in one piece, day partitions (local), Spark local.

    ./dev python benchmarks/bench_engine.py [--logs 1000000] [--modes whole,days,local,spark]
        [--work DIR]

Builds a synthetic month (synth_month.py: N consume logs, an N-row ledger with a few
thousand planted problems) as a snapshot and a ledger CSV in DIR (reused when DIR already
holds one), then runs `reconcile run --from-snapshot --ledger`'s work (compute + write the
report) once per runner, each in a fresh child process, and prints per runner: seconds
(whole run; reading the inputs, the price+match stages, the report), the child's CPU
seconds (wait4), the CPU seconds of its whole process tree and the peak resident memory of
the child process (wait4's ru_maxrss) and of the tree, sampled every 20 ms from /proc (the
local runner's pool workers and Spark's JVM and Python workers are processes of their own;
the child's stderr, Spark's log among it, goes to DIR/child-MODE.log), the load average
around the run, and
the sha256 of summary.json, which must be the same for all. `whole` (the month in one
piece) is the naive alternative.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth_month import RULES, TZ, build


def child(mode: str, work: Path, workers: int) -> None:
    """One run, as `reconcile run --from-snapshot` does it; prints its timings as JSON."""
    from reconcile import pipeline
    from reconcile.engines import LocalRunner, Runner, WholeRunner
    from reconcile.settings import Settings

    runner: Runner
    if mode == "whole":
        runner = WholeRunner()
    elif mode == "local":
        runner = LocalRunner(workers=workers)
    elif mode == "days":
        runner = LocalRunner(workers=1)
    else:
        from pyspark.sql import SparkSession

        from reconcile.engines.spark import SparkRunner

        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        (
            SparkSession.builder.master("local[2]")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.driver.memory", "2g")
            .getOrCreate()
        )
        runner = SparkRunner(scratch=work / "scratch")
    times: dict[str, float] = {}
    peaks: dict[str, float] = {}
    inner = runner.stage
    started = time.perf_counter()

    def peak_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def timed_stage(*args, **kwargs):  # type: ignore[no-untyped-def]
        times["inputs"] = time.perf_counter() - started
        peaks["inputs read"] = peak_mb()
        t = time.perf_counter()
        out = inner(*args, **kwargs)
        times["stages"] = time.perf_counter() - t
        peaks["stages"] = peak_mb()
        return out

    runner.stage = timed_stage  # type: ignore[method-assign]
    settings = Settings(timezone=TZ, rules=RULES)
    request = pipeline.RunRequest(
        period=None, rules=RULES, ledger=work / "ledger.csv", from_snapshot=work / "snap"
    )
    result = pipeline.compute(settings, request, runner=runner)
    t = time.perf_counter()
    pipeline.write_report(result, work / f"out-{mode}")
    times["report"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - started
    peaks["report"] = peak_mb()
    summary = (work / f"out-{mode}" / "summary.json").read_bytes()
    print(
        json.dumps(
            {
                **times,
                "summary_sha256": hashlib.sha256(summary).hexdigest(),
                "findings": len(result.findings),
                "peaks": peaks,
            }
        )
    )


def tree_sample(pid: int, cpu: dict[int, float]) -> int:
    """Resident bytes of a process and all its descendants (from /proc); records in `cpu` the
    CPU seconds each has used so far, its own only (Spark's JVM and Python workers are not
    waited for by the child, so wait4 does not count them)."""
    total, todo = 0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu[p] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


def measure(mode: str, work: Path, workers: int) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", mode, "--work", str(work)]
    cmd += ["--workers", str(workers)]
    log = work / f"child-{mode}.log"  # its stderr: Spark's own log, a traceback
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
    peak = 0
    cpu: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_sample(proc.pid, cpu))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    if status != 0:
        return {"mode": mode, "error": f"exit status {status}, see {log}"}
    figures = json.loads(out.decode().strip().splitlines()[-1])
    own = usage.ru_utime + usage.ru_stime
    return {
        "mode": mode,
        **figures,
        "cpu": own,
        "tree_cpu": sum(cpu.values()),
        "max_rss_mb": usage.ru_maxrss / 1024,
        "tree_mb": peak / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--logs", type=int, default=1_000_000)
    ap.add_argument("--modes", default="whole,days")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--child")
    ap.add_argument("--work", type=Path, help="build the month here, or reuse the one built")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.work, args.workers)
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="reconcile-bench-engine-"))
    if (work / "snap" / "manifest.json").is_file() and (work / "ledger.csv").is_file():
        print(f"reusing the month built in {work}")
    else:
        t, cpu = time.perf_counter(), time.process_time()
        steps = build(args.logs, work)
        print(
            f"{args.logs:,} logs + ledger built in {time.perf_counter() - t:.1f} s "
            f"({time.process_time() - cpu:.1f} s CPU; "
            + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items())
            + f") in {work}, load average {_load()}"
        )
    head = (
        f"{'runner':<8} {'total s':>8} {'inputs s':>9} {'stages s':>9} {'report s':>9} {'CPU s':>7}"
    )
    print(head + f" {'tree CPU s':>10} {'max RSS MB':>11} {'tree MB':>8}  summary")
    for mode in args.modes.split(","):
        before = _load()
        r = measure(mode, work, args.workers)
        if "error" in r:
            print(f"{mode:<8} {r['error']}")
            continue
        print(
            f"{mode:<8} {r['total']:8.1f} {r['inputs']:9.1f} {r['stages']:9.1f} "
            f"{r['report']:9.1f} {r['cpu']:7.1f} {r['tree_cpu']:10.1f} {r['max_rss_mb']:11,.0f} "
            f"{r['tree_mb']:8,.0f}  "
            f"{str(r['summary_sha256'])[:16]}  findings {r['findings']:,}"
        )
        peaks = r["peaks"]
        assert isinstance(peaks, dict)
        print(
            "         peak RSS so far (MB): "
            + ", ".join(f"{k} {v:,.0f}" for k, v in peaks.items())
            + f"; load average before {before}, after {_load()}"
        )


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
