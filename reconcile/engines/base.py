"""The runner seam: what prices and matches a period's logs, on one machine or on a cluster.

Every runner returns the same `Staged` (a `Pricing` and the findings frames before
`findings.finalize`), so the report never knows which runner computed it. The stage code is
the same pandas code everywhere: a runner decides only where each day partition runs.
`stage_whole` is the reference, the period in one piece; `stage_partition` is one day; and
`combine` joins day results into what the whole period would have given.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from typing import Protocol

import pandas as pd

from reconcile.books.problems import unreadable_findings
from reconcile.core.aggregates import LogAggregates
from reconcile.core.aggregates import combine as combine_aggregates
from reconcile.core.logstore import LogStore
from reconcile.core.period import Period
from reconcile.core.results import Ledger, Pricing
from reconcile.core.schema import LOG_COLUMNS, empty_logs
from reconcile.engines.partition import Partitions
from reconcile.match.invoice import match_invoice
from reconcile.match.ledger import match_ledger
from reconcile.pricing.rules import Rules
from reconcile.pricing.stage import price_logs


@dataclass
class Staged:
    """What the price and match stages give the report: pricing (its table left empty: the
    report reads `aggregates`), the logs' aggregates, and findings to finalize."""

    pricing: Pricing
    frames: list[pd.DataFrame]
    aggregates: LogAggregates
    #: whether any log of the period carries a request id (read once, when ledger rows are
    #: routed to days; the ledger's id warnings need it too)
    has_requests: bool = False


@dataclass
class PartResult:
    """One partition's pricing (its table dropped), aggregates and ledger findings."""

    pricing: Pricing
    ledger_findings: pd.DataFrame | None
    aggregates: LogAggregates


class Runner(Protocol):
    """Prices and matches the period's logs against the ledger or invoice."""

    name: str

    def stage(
        self,
        store: LogStore,
        ledger: Ledger | None,
        invoice: Ledger | None,
        rules: Rules,
        id_scheme: str = "stable",
    ) -> Staged: ...


#: What matching reads of a log (never `content` or `other`, the bulk of a log's bytes).
MATCH_COLUMNS = [c for c in LOG_COLUMNS if c not in ("content", "other")]
#: What an invoice is matched on: sums per model, day and token.
INVOICE_COLUMNS = ["created_at", "type", "model_name", "token_name", "quota"]


def month(store: LogStore, columns: list[str] | None = None) -> pd.DataFrame:
    """The whole period's logs in the store's order (the reference run; small months)."""
    days = [store.day(i, columns) for i in range(store.days)]
    return pd.concat(days, ignore_index=True) if days else empty_logs()


def stage_whole(
    store: LogStore,
    ledger: Ledger | None,
    invoice: Ledger | None,
    rules: Rules,
    id_scheme: str = "stable",
) -> Staged:
    """The whole period in one piece: the reference every runner must equal."""
    period = store.period
    logs = month(store)
    pricing = price_logs(logs, rules, period.tz)
    frames = [pricing.findings]
    if ledger is not None:
        frames += [
            match_ledger(logs, ledger, period, rules, id_scheme),
            unreadable_findings(ledger),
        ]
    if invoice is not None:
        frames += [match_invoice(logs, invoice, period, rules), unreadable_findings(invoice)]
    aggregates = LogAggregates.of(logs, pricing.priced, period)
    has_requests = "request_id" in logs and bool(logs["request_id"].notna().any())
    return Staged(without_table(pricing), frames, aggregates, has_requests)


def stage_partition(
    logs: pd.DataFrame,
    ledger: Ledger | None,
    period: Period,
    rules: Rules,
    request_ids: bool = False,
    id_scheme: str = "stable",
) -> PartResult:
    """One partition: its logs priced, its ledger rows matched against its logs.

    `request_ids`: whether any log of the whole period has a request id (the wording of a
    row naming a missing request depends on it).
    """
    pricing = price_logs(logs, rules, period.tz)
    found = None
    if ledger is not None:
        found = match_ledger(logs, ledger, period, rules, id_scheme, request_ids)
    aggregates = LogAggregates.of(logs, pricing.priced, period)
    return PartResult(without_table(pricing), found, aggregates)


def without_table(pricing: Pricing) -> Pricing:
    """`pricing` with its per-log table dropped (the report reads the aggregates).

    Not `iloc[0:0]`: a zero-row slice is a view that keeps every buffer of the table alive, and
    the local runner holds each day's result until the month is combined, so the run's memory
    grew by a day's priced table a day (1.8 GB at 10M logs). `take([])` copies no row.
    """
    return replace(pricing, priced=pricing.priced.take([]))


def combine(
    parts: list[PartResult],
    store: LogStore,
    ledger: Ledger | None,
    invoice: Ledger | None,
    rules: Rules,
    id_scheme: str,
    routed: Partitions,
) -> Staged:
    """Join the days' results (in day order) into the whole period's: findings, warnings and
    sums; no per-log table (the report reads the aggregates).

    An invoice bills sums over the whole period (per model, day, token), so it is matched once
    against a handful of columns of all logs; no partition alone could judge it. A ledger
    paired by content is matched once, against every column but `content` and `other`.
    """
    period = store.period
    empty = price_logs(empty_logs(), rules, period.tz)
    pricing_findings = [p.pricing.findings for p in parts if len(p.pricing.findings)]
    reasons: Counter[str] = Counter()
    for p in parts:
        reasons.update(p.pricing.not_repriceable_reasons)
    pricing = Pricing(
        priced=empty.priced,
        findings=(
            pd.concat(pricing_findings, ignore_index=True) if pricing_findings else empty.findings
        ),
        expected_quota=sum(p.pricing.expected_quota for p in parts),
        warnings=merge_warnings([p.pricing.warnings for p in parts], rules),
        not_repriceable_reasons=dict(sorted(reasons.items())),
    )
    frames = [pricing.findings]
    if ledger is not None and routed.ledger_whole:  # rows paired by content: see partition.py
        frames.append(match_ledger(store.columns(MATCH_COLUMNS), ledger, period, rules, id_scheme))
    elif ledger is not None:
        frames += [p.ledger_findings for p in parts if p.ledger_findings is not None]
    if ledger is not None:
        frames.append(unreadable_findings(ledger))
    if invoice is not None:
        logs = store.columns(INVOICE_COLUMNS)
        frames += [match_invoice(logs, invoice, period, rules), unreadable_findings(invoice)]
    aggregates = combine_aggregates([p.aggregates for p in parts])
    return Staged(pricing, frames, aggregates, routed.has_requests)


_SLOT = "\x00"  # where a warning's count goes; no warning text holds it
_COUNT = re.compile(r"(\d+)( consume)? log\(s\)")


def merge_warnings(per_part: list[list[str]], rules: Rules) -> list[str]:
    """One warning per kind, its count the sum of the partitions' (as the whole run words it).

    Pricing warns per rule ("rule 'x' (line 3): 12 log(s) ...") and once for unreadable
    `other` fields; the same warning from several days becomes one with the total count, in
    the rules' order, as `price_logs` over the whole period orders them.
    """
    totals: dict[str, int] = {}
    for warnings in per_part:
        for text in warnings:
            found = _COUNT.search(text)
            if found is None:
                totals.setdefault(text, -1)
                continue
            template = text[: found.start(1)] + _SLOT + text[found.end(1) :]
            totals[template] = totals.get(template, 0) + int(found.group(1))
    prefixes = [f"rule {r.match!r} (line {r.line}):" for r in rules.models]

    def rank(template: str) -> int:
        for i, prefix in enumerate(prefixes):
            if template.startswith(prefix):
                return i
        return len(prefixes)

    ordered = sorted(totals, key=rank)
    return [t if totals[t] < 0 else t.replace(_SLOT, str(totals[t]), 1) for t in ordered]
