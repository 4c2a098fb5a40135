"""The figures beside the verdict: what a reviewer acts on, each log counted once.

Sign convention (the same in every output, stated once on the Summary sheet): differences
are **gateway minus contract** and **gateway minus books**; refunds count negative because
they reduce spend; top-ups are credit bought and are totalled apart from spend.

- contract: from the pricing findings only (a log's charge against the rules), split into
  overcharged (positive) and undercharged (negative), with net and gross;
- books: gateway net spend (consume − refund) minus the books' net spend, and the part of it
  the findings explain; top-ups and refunds the books lack are listed apart;
- unchecked: consume spend no rule could check (unpriced model, not re-priceable).

All sums are exact Python ints (quota); money is derived from those sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reconcile.core.findings import signed_sums
from reconcile.core.money import exact_sum
from reconcile.core.results import RunResult
from reconcile.core.schema import MISSING_IN_LEDGER, OPEN_PERIOD, PRICING_MISMATCH
from reconcile.report.totals import Count, Totals, compute_totals

SIGN_CONVENTION = (
    "Signs: differences are gateway minus contract and gateway minus books; positive means "
    "the gateway charged more than the contract allows, or holds spend the books lack. "
    "Refunds count negative (they reduce spend); top-ups are credit bought, shown apart."
)


@dataclass(frozen=True)
class Headline:
    contract_over: Count  # pricing findings charged above the contract (quota > 0)
    contract_under: Count  # pricing findings charged below it (quota < 0)
    has_book: bool
    gateway_net_spend: int  # consume − refund
    books_net_spend: int  # the books' consume − refund (an invoice: what it bills)
    books_explained: int  # gateway − books over the findings on consume and refund rows
    topups_not_booked: Count
    refunds_not_booked: Count
    unchecked: Count  # consume logs no rule checks: unpriced model + not re-priceable
    open_period: bool
    cut_off: str | None  # when the logs were read, if the period had not ended

    @property
    def contract_net(self) -> int:
        return self.contract_over.quota + self.contract_under.quota

    @property
    def contract_gross(self) -> int:
        return self.contract_over.quota - self.contract_under.quota

    @property
    def books_net(self) -> int:
        """Gateway net spend minus the books' net spend (0 without books)."""
        return self.gateway_net_spend - self.books_net_spend if self.has_book else 0


def _missing(findings: pd.DataFrame, type_name: str) -> Count:
    if not len(findings):
        return Count(0, 0)
    sel = findings[
        (findings["category"] == MISSING_IN_LEDGER).fillna(False)
        & (findings["type"] == type_name).fillna(False)
    ]
    return Count(len(sel), exact_sum(sel["log_quota"]))


def _contract(findings: pd.DataFrame) -> tuple[Count, Count]:
    if not len(findings) or "contract_diff_quota" not in findings:
        return Count(0, 0), Count(0, 0)
    diffs = findings.loc[
        (findings["category"] == PRICING_MISMATCH).fillna(False), "contract_diff_quota"
    ].dropna()
    pos, neg = diffs[diffs > 0], diffs[diffs < 0]
    return Count(len(pos), exact_sum(pos)), Count(len(neg), exact_sum(neg))


def _books_explained(findings: pd.DataFrame) -> int:
    if not len(findings) or "books_diff_quota" not in findings:
        return 0
    spend = findings[findings["type"].isin(["consume", "refund"]).fillna(False)]
    return sum(p + n for p, n in signed_sums(spend, "books_diff_quota").values())


def compute_headline(result: RunResult, totals: Totals | None = None) -> Headline:
    totals = totals or compute_totals(result)
    findings = result.findings
    over, under = _contract(findings)
    by_type = totals.book_by_type
    books_net = by_type["consume"].quota - by_type["refund"].quota
    is_open = bool(len(findings)) and bool((findings["category"] == OPEN_PERIOD).any())
    cut_off = None
    if is_open:
        cut_off = result.fetch.fetched_at.astimezone(result.period.tz).isoformat(timespec="seconds")
    return Headline(
        contract_over=over,
        contract_under=under,
        has_book=totals.book is not None,
        gateway_net_spend=totals.net_spend,
        books_net_spend=books_net,
        books_explained=_books_explained(findings),
        topups_not_booked=_missing(findings, "topup"),
        refunds_not_booked=_missing(findings, "refund"),
        unchecked=Count(
            totals.unpriced.count + totals.not_repriceable.count,
            totals.unpriced.quota + totals.not_repriceable.quota,
        ),
        open_period=is_open,
        cut_off=cut_off,
    )


def verdict(result: RunResult, headline: Headline) -> tuple[str, str]:
    """(word, style) of the verdict: PASS / FAIL / NOT GATED / INCOMPLETE.

    `--fail-on never` reports without gating: its status is "pass" for CI, but a reviewer is
    never shown a green PASS over findings. An open period is INCOMPLETE whatever the gate.
    """
    if headline.open_period:
        return "INCOMPLETE", "fail"
    if result.fail_on == "never" and len(result.findings):
        return "NOT GATED", "neutral"
    return ("PASS", "pass") if result.status == "pass" else ("FAIL", "fail")
