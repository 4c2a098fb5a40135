"""Command line: a thin edge mapping typed errors to exit statuses (0, 1, 2 input, 3 gateway)."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import SecretStr

from reconcile import __version__, pipeline
from reconcile.cliexit import (
    Terminated,
    broken_pipe,
    on_sigint,
    on_sigterm,
    reader_gone,
    stopped,
    where,
)
from reconcile.clihelp import EXIT_CODES, RULES_EXIT_CODES, settings_help
from reconcile.core.period import Period, parse_period
from reconcile.core.redact import RedactingFilter, Redactor
from reconcile.core.results import RunResult
from reconcile.errors import EXIT_INTERNAL, ReconcileError
from reconcile.pricing.rules import load_rules
from reconcile.pricing.rules_table import describe_rules
from reconcile.settings import ApiKey, EngineName, FailOn, Settings, SourceName, load_settings
from reconcile.sources.progress import ProgressHook, progress_for

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Reconcile an LLM gateway's billing logs with the contract and the books.",
    epilog=EXIT_CODES,
)
rules_app = typer.Typer(no_args_is_help=True, help="Pricing rules files.")
app.add_typer(rules_app, name="rules")

log = logging.getLogger("reconcile")

PeriodOpt = Annotated[str | None, typer.Option("--period", help="A month, YYYY-MM.")]
StartOpt = Annotated[str | None, typer.Option("--start", help="First day, YYYY-MM-DD.")]
EndOpt = Annotated[str | None, typer.Option("--end", help="Day after the last, YYYY-MM-DD.")]
TzOpt = Annotated[
    str | None,
    typer.Option(
        "--tz",
        help="Time zone of the period (default: a snapshot's own with --from-snapshot, else "
        "RECONCILE_TIMEZONE, else UTC).",
    ),
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Output directory: new, empty, or one this tool wrote, which is replaced whole "
        "(default: reports/<period>).",
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Print only the verdict line, warnings and errors."),
]

BaseUrlOpt = Annotated[
    str | None, typer.Option("--base-url", help="Gateway URL (default: RECONCILE_BASE_URL).")
]
SourceOpt = Annotated[
    SourceName | None,
    typer.Option(
        "--source", help="Force a log source: token|self|admin|database (default: credentials)."
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"reconcile {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Reconcile an LLM gateway's billing logs with the contract and the books."""


def _setup_logging(keys: list[ApiKey], quiet: bool) -> Redactor:
    """Plain log lines on stderr, every line scrubbed of API keys."""
    redact = Redactor(keys)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return redact


REPORT_BUG = (
    "this is a bug in reconcile, please report it with the command you ran "
    "(set RECONCILE_DEBUG=1 to see where it failed)"
)


def _fail(exc: ReconcileError, redact: Redactor) -> typer.Exit:
    typer.echo(f"error: {redact(str(exc))}", err=True)
    if exc.exit_code == EXIT_INTERNAL:
        typer.echo(f"error: {REPORT_BUG}", err=True)
    return typer.Exit(exc.exit_code)


def _period(period: str | None, start: str | None, end: str | None, tz: str) -> Period | None:
    if period is None and start is None and end is None:
        return None
    return parse_period(period, start, end, tz)


def _progress(quiet: bool) -> contextlib.AbstractContextManager[ProgressHook | None]:
    """Fetch progress on stderr; none with -q, which prints only the verdict, warnings, errors."""
    return contextlib.nullcontext() if quiet else progress_for(sys.stderr)


def _run(
    settings: Settings,
    request: pipeline.RunRequest,
    out: Path | None,
    junit: Path | None,
    quiet: bool = False,
) -> RunResult:
    # loaded only when a report is written
    from reconcile.report.console import verdict_lines
    from reconcile.report.summary import build_summary

    planned = out or (request.period and pipeline.default_out_dir(request.period))
    if planned:
        pipeline.check_outputs(planned, junit)  # before any work: never lose an hour's fetch
    with _progress(quiet) as hook:
        result = pipeline.compute(settings, request, hook)
    summary = build_summary(result)
    out_dir = out or pipeline.default_out_dir(result.period)
    written = pipeline.write_report(result, out_dir, junit, summary=summary)
    for line in verdict_lines(summary, written, quiet):
        typer.echo(line)
    return result


def _snapshot_timezone(path: Path) -> str | None:
    """The time zone a snapshot was fetched in, so a rerun needs no --tz (None: unknown)."""
    from reconcile.sources.snapshot import MANIFEST_FILE, find_snapshot

    try:
        manifest = json.loads((find_snapshot(path) / MANIFEST_FILE).read_text(encoding="utf-8"))
        tz = manifest["period"]["timezone"]
    except (ReconcileError, OSError, ValueError, KeyError, TypeError):
        return None  # read_snapshot says what is wrong with it, later
    return tz if isinstance(tz, str) else None


@app.command(epilog=EXIT_CODES + " " + settings_help())
def run(
    period: PeriodOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    tz: TzOpt = None,
    ledger: Annotated[
        Path | None, typer.Option("--ledger", help="Ledger CSV, one row per log.")
    ] = None,
    invoice: Annotated[
        Path | None, typer.Option("--invoice", help="Invoice CSV, aggregated.")
    ] = None,
    ledger_profile: Annotated[
        Path | None,
        typer.Option("--ledger-profile", help="TOML mapping the CSV's columns to ours."),
    ] = None,
    rules: Annotated[
        Path | None,
        typer.Option("--rules", help="Pricing rules, TOML (default: RECONCILE_RULES)."),
    ] = None,
    out: OutOpt = None,
    from_snapshot: Annotated[
        Path | None,
        typer.Option("--from-snapshot", help="Re-run from a stored snapshot, offline."),
    ] = None,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 on findings at or above: never|error|warning|info "
            "(default: RECONCILE_FAIL_ON, else error).",
        ),
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write JUnit XML, a test per category.")
    ] = None,
    base_url: BaseUrlOpt = None,
    source: SourceOpt = None,
    engine: Annotated[
        EngineName | None,
        typer.Option("--engine", help="Run price+match on: local (default) | spark."),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Fetch (or load a snapshot), re-price, match and write the report.

    --period and --start/--end exclude each other; so do --ledger and --invoice. With
    --from-snapshot the period (and its time zone) may be left out: the snapshot holds it.
    """
    redact = Redactor([])
    try:
        if tz is None and from_snapshot is not None:
            tz = _snapshot_timezone(from_snapshot)
        settings = load_settings(
            timezone=tz,
            rules=rules,
            fail_on=fail_on,
            base_url=base_url,
            source=source,
            engine=engine,
        )
        redact = _setup_logging(settings.secrets(), quiet)
        request = pipeline.RunRequest(
            period=_period(period, start, end, settings.timezone),
            rules=settings.rules,
            ledger=ledger,
            invoice=invoice,
            ledger_profile=ledger_profile,
            from_snapshot=from_snapshot,
            fail_on=settings.fail_on,
        )
        result = _run(settings, request, out, junit, quiet)
    except ReconcileError as exc:
        raise _fail(exc, redact) from None
    if result.status == "fail":
        raise typer.Exit(1)


@app.command(epilog=EXIT_CODES + " " + settings_help())
def fetch(
    period: PeriodOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    tz: TzOpt = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to store the snapshot (default: reports/<period>)."),
    ] = None,
    base_url: BaseUrlOpt = None,
    source: SourceOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Fetch the period's logs and store the snapshot only.

    --period and --start/--end exclude each other.
    """
    redact = Redactor([])
    try:
        settings = load_settings(timezone=tz, base_url=base_url, source=source)
        redact = _setup_logging(settings.secrets(), quiet)
        when = _period(period, start, end, settings.timezone)
        if when is None:
            when = parse_period(None, None, None, settings.timezone)  # raises: says what to give
        pipeline.check_outputs(out or pipeline.default_out_dir(when))
        with _progress(quiet) as hook:
            store = pipeline.fetch_to(settings, when, out or pipeline.default_out_dir(when), hook)
    except ReconcileError as exc:
        raise _fail(exc, redact) from None
    windows = len(store.meta.windows)
    typer.echo(f"{len(store):,} logs in {windows:,} windows -> {store.directory}")


@app.command(epilog=EXIT_CODES)
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("reports/demo"),
    quiet: QuietOpt = False,
) -> None:
    """Run the whole reconciliation against a built-in gateway serving fixture logs."""
    from reconcile.demo import run as demo_mod  # the built-in gateway: only the demo needs it

    redact = Redactor([])
    try:
        with demo_mod.demo_gateway() as (url, keys):
            settings = Settings(
                base_url=url,
                api_keys=SecretStr(",".join(keys)),
                timezone=demo_mod.TIMEZONE,
                rules=demo_mod.FILES.rules,
                fail_on="error",
            )
            redact = _setup_logging(settings.keys(), quiet)
            request = pipeline.RunRequest(
                period=parse_period(demo_mod.PERIOD, None, None, demo_mod.TIMEZONE),
                rules=demo_mod.FILES.rules,
                ledger=demo_mod.FILES.ledger,
                fail_on="error",
            )
            result = _run(settings, request, out, None, quiet)
    except ReconcileError as exc:
        raise _fail(exc, redact) from None
    if result.status == "fail":
        raise typer.Exit(1)


@rules_app.command("check", epilog=RULES_EXIT_CODES)
def rules_check(path: Annotated[Path, typer.Argument(help="The rules file to validate.")]) -> None:
    """Validate a rules file and print what it prices."""
    try:
        desc = describe_rules(load_rules(path))
    except ReconcileError as exc:
        raise _fail(exc, Redactor([])) from None
    for line in [*desc.summary_lines(), "", *desc.table_lines()]:
        typer.echo(line)
    for line in desc.details:
        typer.echo(line)
    for warning in desc.warnings:
        typer.echo(f"warning: {warning}")
    typer.echo(f"ok: {path}")


@rules_app.command("pull", epilog=RULES_EXIT_CODES)
def rules_pull(
    out: Annotated[Path, typer.Option("--out", help="The rules file to write.")],
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="The gateway (default: RECONCILE_BASE_URL)."),
    ] = None,
    effective_from: Annotated[
        str | None,
        typer.Option("--effective-from", help="YYYY-MM-DD the prices apply from (default: today)."),
    ] = None,
) -> None:
    """Write the gateway's published price list (GET /api/pricing) as a rules file."""
    from datetime import date

    from reconcile.errors import InputError
    from reconcile.pricing.pull import fetch_pricing, rules_text, write_pulled

    try:
        url = base_url or load_settings().base_url
        if not url:
            raise InputError("give --base-url or set RECONCILE_BASE_URL", field="--base-url")
        try:
            since = date.fromisoformat(effective_from) if effective_from else date.today()
        except ValueError:
            raise InputError(
                f"not a date like 2026-11-01: {effective_from!r}", field="--effective-from"
            ) from None
        prices, base = fetch_pricing(url)
        pulled = rules_text(prices, base, since)
        write_pulled(out, pulled.text)
    except ReconcileError as exc:
        raise _fail(exc, Redactor([])) from None
    for skipped in pulled.skipped:
        typer.echo(f"warning: not written: {skipped}", err=True)
    typer.echo(f"wrote {pulled.models} model(s) effective from {since.isoformat()} to {out}")


@rules_app.command("diff", epilog=RULES_EXIT_CODES)
def rules_diff(
    old: Annotated[Path, typer.Argument(help="The earlier rules file.")],
    new: Annotated[Path, typer.Argument(help="The later rules file.")],
) -> None:
    """List what changed between two rules files (+ added, - removed, ~ changed)."""
    from reconcile.pricing.diff import diff_rules

    try:
        changes = diff_rules(load_rules(old), load_rules(new))
    except ReconcileError as exc:
        raise _fail(exc, Redactor([])) from None
    for line in changes:
        typer.echo(line)
    typer.echo(f"{len(changes)} change(s)")


def _stop(exc: BaseException) -> NoReturn:
    """End a run stopped by Ctrl-C (130) or SIGTERM (143); its scratch files removed."""
    pipeline.remove_scratch()
    if isinstance(exc, KeyboardInterrupt):
        typer.echo("error: interrupted; nothing was written", err=True)
        sys.exit(130)
    typer.echo("error: terminated (SIGTERM); nothing half-written was left", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(143)  # now: finalizers of half-run writers would print their own tracebacks


def main() -> None:
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigint)
    # What the imports built (pandas, pyarrow, ...) lives until exit. Freezing it keeps the
    # garbage collector from walking it again at every full collection and once more at
    # exit, which took 0.1-0.3 s of every run (measured on `reconcile fetch`).
    gc.freeze()
    try:
        app(standalone_mode=True)
    except SystemExit as exc:
        if broken_pipe(exc.__context__):  # click's own exit on a closed pipe is 1
            sys.exit(reader_gone())
        raise
    except (KeyboardInterrupt, Terminated) as exc:
        _stop(exc)
    except BrokenPipeError:
        sys.exit(reader_gone())
    except Exception as exc:
        signal_ = stopped(exc)
        if signal_ is not None:
            _stop(signal_)
        # Anything the code did not expect: never a traceback (it may hold data) and never
        # exit 1, which means findings. RECONCILE_DEBUG=1 shows where it happened.
        if os.environ.get("RECONCILE_DEBUG") == "1":
            traceback.print_exc()
        typer.echo(f"error: internal error: {type(exc).__name__}{where(exc)}", err=True)
        typer.echo(f"error: {REPORT_BUG}", err=True)
        sys.exit(EXIT_INTERNAL)
