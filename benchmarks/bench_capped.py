"""A month several times larger than memory: `reconcile run` under a hard memory limit.

    ./dev python benchmarks/bench_capped.py --work DIR [--caps none,6,4.5,3]
        [--inputs logs,ledger] [--runners days,whole] [--month-size] [--out DIR]

DIR holds a month built by bench_engine.py (synth_month.py): `snap/` (a snapshot, a file a
local day) and `ledger.csv`. Each run is a child process in a memory cgroup of its own whose
limit is the cap (GiB; `none`: no limit, the reference), created from this process and the
child put in it before it executes anything (cgroup v1 `memory.limit_in_bytes`, else v2
`memory.max`; the group is made under this process's own, so it stays inside any limit this
process already has, and removed afterwards). Runners:

- `days`: the real CLI as a user runs it, `reconcile run --from-snapshot DIR/snap [--ledger
  DIR/ledger.csv] --rules RULES` (the default local runner: a day at a time; exit 1 means it
  finished and found the month's planted problems);
- `whole`: the naive alternative, the month read whole (`WholeRunner`, which the CLI cannot
  select), run as bench_engine.py's child runs it: `pipeline.compute` + `write_report`.

Printed per run: the cap, the exit status (or the signal), whether the kernel OOM-killed it
(the group's OOM-kill count, or SIGKILL), wall seconds, the child's CPU seconds
(wait4), the group's peak (cgroup v1 `memory.max_usage_in_bytes`, v2 `memory.peak`: it counts
the page cache of the files read and written, which the kernel reclaims before it kills), the
child's own peak resident memory (wait4 ru_maxrss), the load average around the run and the
sha256 of summary.json, checked against the uncapped run of the same inputs. `--month-size`
first prints the month's logs as the naive code holds them: every day file read into one
pandas frame (`memory_usage(deep=True)`), in a child of its own, uncapped; `whole` runs
uncapped only with `--whole-uncapped` (at 10M logs it needs about 14 GB).

Needs root (or a delegated cgroup); exits 2 when no memory cgroup can be written.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth_month import RULES

GIB = 2**30
V1_ROOT = Path("/sys/fs/cgroup/memory")
V2_ROOT = Path("/sys/fs/cgroup")


class Group:
    """A memory cgroup with a limit, v1 or v2; `None` from `make` when neither is writable."""

    def __init__(self, path: Path, version: int) -> None:
        self.path, self.version = path, version

    @staticmethod
    def make(name: str, limit: int | None) -> Group | None:
        """Under this process's own group (so any limit it has still applies), else the root:
        a v2 group holding processes cannot enable controllers for children."""
        for version, root, marker in (
            (1, V1_ROOT, "memory.limit_in_bytes"),
            (2, V2_ROOT, "cgroup.controllers"),
        ):
            if not (root / marker).is_file():
                continue
            for parent in dict.fromkeys((root / own_group(version), root)):
                group = Group(parent / name, version)
                try:
                    if version == 2:
                        (parent / "cgroup.subtree_control").write_text("+memory")
                    group.path.mkdir()
                except OSError:
                    continue
                try:
                    group.limit(limit)
                    return group
                except OSError:
                    group.remove()
        return None

    def limit(self, limit: int | None) -> None:
        if self.version == 1:
            (self.path / "memory.limit_in_bytes").write_text(str(limit or -1))
            swap = self.path / "memory.memsw.limit_in_bytes"
            if limit and swap.exists():  # no swapping either: the cap is the cap
                swap.write_text(str(limit))
        else:
            (self.path / "memory.max").write_text(str(limit) if limit else "max")
            swap = self.path / "memory.swap.max"
            if swap.exists():
                swap.write_text("0")

    def enter(self) -> None:
        """Put the calling process in the group (run in the child, before exec)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def peak(self) -> int | None:
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return int((self.path / name).read_text())
        except (OSError, ValueError):
            return None

    def oom_kills(self) -> int:
        """Processes of the group the kernel's OOM killer killed (v1 oom_control, v2 events)."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        fields = dict(
            line.split() for line in (self.path / name).read_text().splitlines() if line.strip()
        )
        return int(fields.get("oom_kill", 0))

    def remove(self) -> None:
        if self.version == 1:  # the page cache it is charged for goes to the parent
            with contextlib.suppress(OSError):
                (self.path / "memory.force_empty").write_text("0")
        for _ in range(50):  # the group empties a moment after its last process is reaped
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)
        print(f"could not remove {self.path}", file=sys.stderr)


def own_group(version: int) -> str:
    """This process's cgroup path in the hierarchy of `version` (relative, "" for the root)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (version == 1 and "memory" in controllers.split(",")) or (
            version == 2 and controllers == ""
        ):
            return path.lstrip("/")
    return ""


def command(runner: str, work: Path, ledger: bool, out: Path) -> list[str]:
    if runner == "days":
        exe = Path(sys.executable).with_name("reconcile")
        cmd = [str(exe), "run", "--from-snapshot", str(work / "snap"), "--rules", str(RULES)]
        cmd += ["--out", str(out), "--quiet"]  # exit 1: findings (the month has planted ones)
        return cmd + (["--ledger", str(work / "ledger.csv")] if ledger else [])
    cmd = [sys.executable, __file__, "--child", runner, "--work", str(work), "--out", str(out)]
    return cmd + (["--with-ledger"] if ledger else [])


def child_whole(work: Path, ledger: bool, out: Path) -> None:
    """`reconcile run --from-snapshot`'s work with the month read whole (WholeRunner)."""
    from reconcile import pipeline
    from reconcile.engines import WholeRunner
    from reconcile.settings import Settings

    snap = pipeline.RunRequest(
        period=None,
        rules=RULES,
        ledger=work / "ledger.csv" if ledger else None,
        from_snapshot=work / "snap",
    )
    result = pipeline.compute(Settings(rules=RULES), snap, runner=WholeRunner())
    pipeline.write_report(result, out)


def child_month_size(work: Path) -> None:
    """The month's logs as one pandas frame, as the whole runner holds them: prints its size."""
    from reconcile.engines.base import month
    from reconcile.sources.snapshot_read import open_snapshot

    logs = month(open_snapshot(work / "snap"))
    deep = int(logs.memory_usage(deep=True).sum())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"rows": len(logs), "deep": deep, "peak": peak}))


def run(runner: str, work: Path, ledger: bool, cap: float | None, out: Path) -> dict[str, object]:
    label = f"{runner}-{'ledger' if ledger else 'logs'}-{cap or 'none'}"
    group = Group.make(f"reconcile-capped-{os.getpid()}-{label}", int(cap * GIB) if cap else None)
    if group is None:
        print(
            "no writable memory cgroup (v1 memory.limit_in_bytes or v2 memory.max): run as root",
            file=sys.stderr,
        )
        sys.exit(2)
    target = out / label
    shutil.rmtree(target, ignore_errors=True)
    log = out / f"{label}.log"
    load_before = load()
    started = time.perf_counter()
    try:
        with log.open("wb") as err:
            proc = subprocess.Popen(
                command(runner, work, ledger, target),
                stdout=err,
                stderr=err,
                preexec_fn=group.enter,
            )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        summary = target / "summary.json"
        finished = os.WIFEXITED(status) and os.WEXITSTATUS(status) in (0, 1)
        sha = hashlib.sha256(summary.read_bytes()).hexdigest() if finished else None
        return {
            "label": label,
            "cap": cap,
            "status": status_text(status),
            "killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL,
            "oom_kills": group.oom_kills(),
            "wall": wall,
            "cpu": usage.ru_utime + usage.ru_stime,
            "group_peak": group.peak(),
            "rss_peak": usage.ru_maxrss * 1024,
            "load": f"{load_before} → {load()}",
            "sha": sha,
        }
    finally:
        group.remove()


def status_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.WEXITSTATUS(status)}"


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def mb(n: object) -> str:
    return f"{n / 2**20:,.0f}" if isinstance(n, int) else "—"


def month_size(work: Path) -> None:
    before = load()
    t = time.perf_counter()
    cmd = [sys.executable, __file__, "--child", "month-size", "--work", str(work)]
    done = subprocess.run(cmd, capture_output=True, check=True)
    r = json.loads(done.stdout.decode().splitlines()[-1])
    print(
        f"the month's logs read whole into one frame: {r['rows']:,} rows, "
        f"memory_usage(deep=True) {mb(r['deep'])} MiB, peak RSS while reading {mb(r['peak'])} "
        f"MiB ({time.perf_counter() - t:.1f} s, load {before} → {load()})"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, required=True, help="holds snap/ and ledger.csv")
    ap.add_argument("--caps", default="none,6,4.5,3", help="GiB, comma-separated; none: no cap")
    ap.add_argument("--inputs", default="logs,ledger", help="logs (snapshot only), ledger")
    ap.add_argument("--runners", default="days,whole")
    ap.add_argument("--month-size", action="store_true")
    ap.add_argument(
        "--whole-uncapped", action="store_true", help="also run `whole` uncapped (10M: ~14 GB)"
    )
    ap.add_argument("--out", type=Path, default=Path("/tmp/reconcile-bench-capped"))
    ap.add_argument("--child")
    ap.add_argument("--with-ledger", action="store_true")
    args = ap.parse_args()
    if args.child == "whole":
        child_whole(args.work, args.with_ledger, args.out)
        return
    if args.child == "month-size":
        child_month_size(args.work)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if args.month_size:
        month_size(args.work)
    caps = [None if c == "none" else float(c) for c in args.caps.split(",")]
    head = f"{'run':<22} {'status':<14} {'OOM kills':>9} {'wall s':>7} "
    print(head + f"{'CPU s':>7} {'group peak MiB':>14} {'RSS peak MiB':>12}  load      summary")
    reference: dict[str, object] = {}
    for inputs in args.inputs.split(","):
        for runner in args.runners.split(","):
            for cap in caps:
                if runner == "whole" and cap is None and not args.whole_uncapped:
                    print(f"{runner}-{inputs}-none: not run (--whole-uncapped; see --month-size)")
                    continue
                r = run(runner, args.work, inputs == "ledger", cap, args.out)
                sha = r["sha"]
                if sha is not None:
                    reference.setdefault(inputs, sha)
                same = "" if sha is None else (" same" if sha == reference[inputs] else " DIFFERS")
                print(
                    f"{r['label']:<22} {r['status']:<14} {r['oom_kills']:>9} "
                    f"{r['wall']:7.1f} {r['cpu']:7.1f} {mb(r['group_peak']):>14} "
                    f"{mb(r['rss_peak']):>12}  {r['load']}  {str(sha)[:16]}{same}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
