"""The stages in order: settings → fetch (or snapshot) → price → match → report.

Everything here computes or writes; nothing prints and nothing exits. The CLI calls these.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reconcile.books.invoice import load_invoice
from reconcile.books.ledger import load_ledger
from reconcile.core import findings as findings_mod
from reconcile.core.atomic import atomic_directory, atomic_write_text, check_replaceable
from reconcile.core.identity import UniqueIds
from reconcile.core.period import Period
from reconcile.core.results import InputFile, Ledger, RunResult
from reconcile.engines import Runner, choose_runner
from reconcile.errors import InputError
from reconcile.match.ledger import id_warnings
from reconcile.pricing.rules import load_rules
from reconcile.report.summary import build_summary
from reconcile.settings import Settings
from reconcile.sources.base import LogSource
from reconcile.sources.choose import choose_source
from reconcile.sources.fetch_into import fetch_into
from reconcile.sources.progress import ProgressHook
from reconcile.sources.snapshot import (
    MANIFEST_FILE,
    SNAPSHOT_DIR,
    SnapshotStore,
    find_snapshot,
    open_snapshot,
    save_snapshot,
)


@dataclass(frozen=True)
class RunRequest:
    """What one `reconcile run` was asked to do (flags and settings already merged)."""

    period: Period | None  # None: take the period from the snapshot
    rules: Path
    ledger: Path | None = None
    invoice: Path | None = None
    ledger_profile: Path | None = None
    from_snapshot: Path | None = None
    fail_on: str = "error"


def default_out_dir(period: Period) -> Path:
    return Path("reports") / period.label


def _check_readable(path: Path, role: str) -> None:
    if not path.is_file():
        raise InputError(f"{role} file not found", file=path)


def _source(settings: Settings) -> LogSource:
    """The source the settings choose (sources/choose.py), with what it needs."""
    source = choose_source(settings)
    if source.name != "database" and not settings.base_url:
        raise InputError("no gateway URL: set RECONCILE_BASE_URL", field="RECONCILE_BASE_URL")
    return source


def fetch_snapshot(
    settings: Settings, period: Period, directory: Path, progress: ProgressHook | None = None
) -> SnapshotStore:
    """Fetch the period's logs into a snapshot in `directory`, read back a day at a time: from
    the gateway's database never holding the month (sources/fetch_into.py)."""
    return fetch_into(_source(settings), period, directory, progress)


def compute(
    settings: Settings,
    request: RunRequest,
    progress: ProgressHook | None = None,
    runner: Runner | None = None,
) -> RunResult:
    """Run every stage and return the verdict; inputs are validated before the network."""
    if request.ledger is not None and request.invoice is not None:
        raise InputError("give --ledger or --invoice, not both", field="--invoice")
    _check_readable(request.rules, "rules")
    rules = load_rules(request.rules)
    inputs = [InputFile("rules", str(request.rules), rules.sha256)]

    snapshot: SnapshotStore | None = None
    snapshot_input: InputFile | None = None
    if request.from_snapshot is not None:
        snapshot = open_snapshot(request.from_snapshot)
        manifest = find_snapshot(request.from_snapshot) / MANIFEST_FILE
        snapshot_input = InputFile(
            "snapshot",
            str(request.from_snapshot),
            hashlib.sha256(manifest.read_bytes()).hexdigest(),
        )
        if request.period is not None and (
            request.period.start != snapshot.period.start
            or request.period.end != snapshot.period.end
        ):
            asked = request.period
            raise InputError(
                f"the snapshot holds {snapshot.period.label} "
                f"({snapshot.period.start.isoformat()} to {snapshot.period.end.isoformat()}, "
                f"time zone {snapshot.period.timezone}), not the period asked for "
                f"({asked.start.isoformat()} to {asked.end.isoformat()}, time zone "
                f"{asked.timezone}); leave out --period and --tz to use the snapshot's",
                file=request.from_snapshot,
                field="--period",
            )
    period = snapshot.period if snapshot is not None else request.period
    if period is None:
        raise InputError("give --period or --start/--end", field="--period")
    tz = period.tz

    ledger: Ledger | None = None
    invoice: Ledger | None = None
    if request.ledger is not None:
        _check_readable(request.ledger, "ledger")
        ledger = load_ledger(request.ledger, rules, tz, request.ledger_profile)
        inputs.append(InputFile("ledger", str(request.ledger), ledger.sha256))
    if request.invoice is not None:
        _check_readable(request.invoice, "invoice")
        invoice = load_invoice(request.invoice, rules, tz, request.ledger_profile)
        inputs.append(InputFile("invoice", str(request.invoice), invoice.sha256))

    if snapshot_input is not None:
        inputs.append(snapshot_input)
    if snapshot is None:
        snapshot = _fetch_to_scratch(settings, period, progress)
    fetched = snapshot.meta
    # the stages read the logs a day at a time (core/logstore.py), with the ids
    # core/identity.py gives them; the report reads the days' aggregates
    store = UniqueIds(snapshot, fetched.id_scheme)

    # engines: price and match run through the chosen runner (reconcile/engines/)
    staged = (runner or choose_runner(settings)).stage(
        store, ledger, invoice, rules, fetched.id_scheme
    )
    pricing, frames = staged.pricing, staged.frames
    frames.append(findings_mod.open_period(period, fetched.fetched_at))
    # a pricing finding shows the ledger line booking its log; by log_id only where the
    # gateway's ids are the ledger's (with ids by position, ours are renumbered)
    book = (
        ledger
        if fetched.id_scheme == "stable"
        or (ledger is not None and ledger.match_key == "request_id")
        else None
    )
    found = findings_mod.finalize(frames, rules, book)
    # the stages' findings are all in `found` now; the report reads only that
    frames.clear()
    pricing.findings = pricing.findings.iloc[0:0]
    failed = findings_mod.reaches(found, request.fail_on)
    return RunResult(
        fetch=fetched,
        rules=rules,
        pricing=pricing,
        findings=found,
        inputs=inputs,
        fail_on=request.fail_on,
        status="fail" if failed else "pass",
        aggregates=staged.aggregates,
        ledger=ledger,
        invoice=invoice,
        warnings=[
            *fetched.warnings,
            *(
                id_warnings(ledger, fetched.id_scheme, staged.has_requests)
                if ledger is not None
                else []
            ),
            *pricing.warnings,
        ],
    )


def _fetch_to_scratch(
    settings: Settings, period: Period, progress: ProgressHook | None
) -> SnapshotStore:
    """A run's fetch, into a snapshot in a scratch directory the stages read a day at a time
    (the database source never holds the month); the report copies it. The directory is
    removed when the store is let go, or when the process ends."""
    scratch = Path(tempfile.mkdtemp(prefix="reconcile-fetch-"))
    try:
        store = fetch_snapshot(settings, period, scratch / SNAPSHOT_DIR, progress)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    _SCRATCH.append(weakref.finalize(store, shutil.rmtree, scratch, True))
    return store


#: Removers of the scratch snapshots of this process's runs (each runs once at most).
_SCRATCH: list[weakref.finalize[..., object]] = []


def remove_scratch() -> None:
    """Remove every scratch snapshot now: a run stopped by a signal ends with os._exit,
    which runs no finalizer."""
    while _SCRATCH:
        _SCRATCH.pop()()


@contextmanager
def writing(path: Path, setting: str) -> Iterator[None]:
    """Turn an OS error while writing an output (disk full, read-only, busy, no permission)
    into one line naming the file and the option or setting that chose it (exit 2)."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"cannot write: {reason}", file=path, field=setting) from None


def check_outputs(out_dir: Path, junit: Path | None = None) -> None:
    """Before any work: refuse an --out that is not ours to replace, and a --junit directory."""
    check_replaceable(out_dir, "--out")
    if junit is not None and junit.is_dir():
        raise InputError("is a directory, not a file", file=junit, field="--junit")


def write_report(
    result: RunResult,
    out_dir: Path,
    junit: Path | None = None,
    summary: dict[str, object] | None = None,
) -> dict[str, Path]:
    """Write every output into `out_dir` atomically; return what was written, by role.

    `summary`: build_summary(result), if the caller already has it.
    """
    # imported here: `reconcile fetch` never writes a report and starts faster without
    # loading openpyxl and the report code
    from reconcile.report.csvfile import write_discrepancies_csv
    from reconcile.report.junit import render_junit
    from reconcile.report.markdown import render_markdown
    from reconcile.report.workbook import write_workbook

    label = result.period.label
    names = {
        "workbook": f"reconciliation-{label}.xlsx",
        "summary": "summary.json",
        "discrepancies": "discrepancies.csv",
        "snapshot": SNAPSHOT_DIR,
    }
    summary = summary if summary is not None else build_summary(result)
    with writing(out_dir, "--out"), atomic_directory(out_dir, "--out") as staging:
        save_snapshot(result.fetch, staging / SNAPSHOT_DIR)  # a copy, if already on disk
        write_discrepancies_csv(result.findings, staging / names["discrepancies"])
        write_workbook(result, staging / names["workbook"])
        (staging / names["summary"]).write_text(
            json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    written = {role: out_dir / name for role, name in names.items()}
    if junit is not None:
        with writing(junit, "--junit"):
            atomic_write_text(junit, render_junit(summary, result.findings))
        written["junit"] = junit
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with (
            writing(Path(step_summary), "GITHUB_STEP_SUMMARY"),
            open(step_summary, "a", encoding="utf-8") as f,
        ):
            f.write(render_markdown(summary) + "\n")
    return written


def fetch_to(
    settings: Settings, period: Period, out_dir: Path, progress: ProgressHook | None = None
) -> SnapshotStore:
    """`reconcile fetch`: the period's logs straight into the snapshot of `out_dir`, which
    appears whole or not at all (a fetch that fails leaves an earlier `out_dir` as it was)."""
    with writing(out_dir, "--out"), atomic_directory(out_dir, "--out") as staging:
        store = fetch_snapshot(settings, period, staging / SNAPSHOT_DIR, progress)
    return store.at(out_dir / SNAPSHOT_DIR)
