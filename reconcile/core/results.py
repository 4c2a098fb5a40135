"""What each stage hands to the next: settings → fetch → snapshot → price → match → report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from reconcile.core.aggregates import LogAggregates
from reconcile.core.money import exact_sum
from reconcile.core.period import Period
from reconcile.pricing.rules import Rules


@dataclass(frozen=True)
class WindowRecord:
    """One fetched time window of one key: the proof that its `total` was accounted for."""

    key_ref: str
    start: int  # unix s, inclusive
    end: int  # unix s, inclusive (as queried; the period's own end is exclusive)
    total: int  # the gateway's `total` for the window
    ids: int  # distinct ids fetched for the window
    pages: int
    attempts: int  # how many times the window was paged (1 unless the total moved)


@dataclass
class FetchResult:
    """The logs of a period, deduplicated by id, each inside [period.start, period.end)."""

    period: Period
    logs: pd.DataFrame  # schema.LOG_DTYPES
    windows: list[WindowRecord]
    key_refs: list[str]
    fetched_at: datetime  # aware; fixes the report's timestamps so reruns are identical
    base_url: str = ""  # scheme://host[:port] only, never a query string
    duplicates: int = 0  # rows seen more than once (same id) and kept once
    outside_window: int = 0  # rows the gateway returned outside the window asked for, dropped
    other_types: int = 0  # manage/system logs seen and not kept
    source: str = "token"  # which LogSource read it: token | self | admin | database
    id_scheme: str = "stable"  # the gateway's ids as seen: stable | mod1024 | position
    #: The gateway's own consume sum for the period (/api/log/self/stat, /api/log/stat),
    #: None where the source has none or it could not be read.
    gateway_stat_quota: int | None = None
    #: Things the reader of the report must know about the read (e.g. the gateway's own sum
    #: differs from the rows' sum); sources add, the report shows.
    warnings: list[str] = field(default_factory=list)


@dataclass
class Pricing:
    """Re-pricing of every consume log under the rules."""

    #: One row per consume log: id, rule, model_ratio, completion_ratio, cache_ratio,
    #: cache_creation_ratio, group_ratio, model_price (exact decimals as strings),
    #: expected_quota (Int64, NA when not priced), diff_quota (charged - expected, Int64),
    #: status (ok | mismatch | unpriced | not_repriceable), reason (str), path (the billing
    #: path: text, cache, per_call, image, task_submit, ...; see reconcile.pricing.paths),
    #: reason_code (a not_repriceable log's reason in a word).
    priced: pd.DataFrame
    #: schema.FINDING_DTYPES; emptied by pipeline.compute once RunResult.findings holds them
    findings: pd.DataFrame
    expected_quota: int  # over the consume logs a rule prices and that could be re-priced
    warnings: list[str] = field(default_factory=list)
    #: not_repriceable logs counted by reason code (priced["reason_code"]), e.g.
    #: {"tool_price_missing": 3, "task_settlement": 12}; empty when every log was checked.
    not_repriceable_reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class Ledger:
    """A ledger or invoice CSV, read and validated row by row."""

    kind: str  # "ledger" | "invoice"
    path: str
    sha256: str
    #: ledger: line, log_id (Int64), request_id, created_at (int64 unix s, NA when absent),
    #: type (int64), token_name, model_name, quota (int64).
    #: invoice: line, model_name, date (string YYYY-MM-DD or NA), token_name (or NA), quota.
    #: Both also carry `rounding` (int64): how far the quota may be off because the file wrote
    #: a currency amount to a few decimal places (0 for quota cells); matching allows for it.
    rows: pd.DataFrame
    #: line (int), field (str), reason (str), raw (str): rows that could not be read;
    #: also log_id (Int64) and request_id when the row's id could be read despite the rest.
    unreadable: pd.DataFrame
    currency: str = "USD"  # the currency the file's amounts were in (for display)
    #: How the file was read, for the report: canonical column -> the file's column name,
    #: columns nothing reads, encoding, separator, what rows are matched on (a ledger: the id
    #: columns it has, "log_id", "request_id", "log_id+request_id", or "content" when it has
    #: none; an invoice: its keys, e.g. "model_name+date"), empty records
    #: skipped, and notes on what was detected (decimal style, preamble lines, currencies).
    columns: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    encoding: str = ""
    delimiter: str = ""
    match_key: str = "log_id"
    blank_rows: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def quota(self) -> int:
        return exact_sum(self.rows["quota"]) if len(self.rows) else 0


@dataclass(frozen=True)
class InputFile:
    role: str  # "rules" | "ledger" | "invoice" | "snapshot"
    path: str
    sha256: str


@dataclass
class RunResult:
    """Everything the report stage writes, computed; writing it decides nothing.

    The report reads the logs only through `aggregates`: `fetch` is needed for its metadata
    (period, fetched_at, base_url, key_refs, windows, counts) and `pricing` for its warnings
    and expected_quota, so a run that prices day by day may leave `fetch.logs` and
    `pricing.priced` empty. Only the snapshot written beside the report (pipeline.write_report)
    still reads `fetch.logs`.
    """

    fetch: FetchResult  # logs may be empty (see above)
    rules: Rules
    pricing: Pricing  # priced may be empty (see above)
    findings: pd.DataFrame  # finalized: FINDING_DTYPES + MONEY_COLUMNS, sorted by money at stake
    inputs: list[InputFile]
    fail_on: str
    status: str  # "pass" | "fail"
    #: what the report reads of the logs and their pricing: sums by model, day, token, ...
    aggregates: LogAggregates
    ledger: Ledger | None = None
    invoice: Ledger | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def period(self) -> Period:
        return self.fetch.period
