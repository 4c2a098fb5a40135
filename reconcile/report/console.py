"""The verdict as a few lines for a terminal or a CI log, rendered from summary.json's data.

Quota and money side by side; signed figures are gateway minus contract / books. The CLI
prints these lines; rendering them here keeps the console one more output of the same
report data, like the CSV and the step summary.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from reconcile.core.money import display_amount


def _money(summary: dict[str, Any], amount: object) -> str:
    return display_amount(Decimal(str(amount)), str(summary["currency"]["code"]))


def verdict_lines(summary: dict[str, Any], written: dict[str, Path], quiet: bool) -> list[str]:
    """The verdict line, then (unless `quiet`) the totals, the headline and the findings by
    category; the warnings always, since they are what the reviewer must know; then (unless
    `quiet`) where each output was written."""
    p = summary["period"]
    line = f"{summary['verdict']}  {summary['label']}  [{p['start']} .. {p['end']}) {p['timezone']}"
    if summary["open_period"]["open"]:
        line += f"  (open period: logs read at {summary['open_period']['cut_off']})"
    lines = [line]
    if not quiet:
        lines += _totals(summary)
    lines += [f"  warning: {warning}" for warning in summary["warnings"]]
    if not quiet:
        lines += [f"  {role:<13} {path}" for role, path in written.items()]
    return lines


def _totals(summary: dict[str, Any]) -> list[str]:
    head = summary["headline"]
    amounts = summary["amounts"]
    lines = []
    for name in ("consume", "refund", "topup", "error"):
        t = summary["logs"][name]
        money = _money(summary, amounts[name]) if name in amounts else ""
        lines.append(f"  {name:<9} {t['count']:>9,} logs {t['quota']:>18,} quota  {money:>18}")
    lines.append(
        f"  {'expected':<9} {'':>14} {summary['expected_quota']:>18,} quota  "
        f"{_money(summary, amounts['expected']):>18} (rules)"
    )
    ledger = summary["ledger"]
    if ledger["kind"] != "none":
        lines.append(
            f"  {ledger['kind']:<9} {ledger['rows']:>9,} rows {ledger['quota']:>18,} quota  "
            f"{_money(summary, amounts['ledger']):>18}"
        )
    over = head["contract"]["overcharged"]
    lines.append(
        f"  contract overcharged: {over['count']:,} logs, {_money(summary, over['amount'])}; "
        f"net {_money(summary, head['contract']['net']['amount'])} (gateway − contract)"
    )
    if head["books"] is not None:
        books = head["books"]
        lines.append(
            f"  books vs gateway (net spend): {_money(summary, books['net']['amount'])}; "
            f"top-ups not booked {_money(summary, books['topups_not_booked']['amount'])}, "
            f"refunds not booked {_money(summary, books['refunds_not_booked']['amount'])}"
        )
    lines.append(f"  not checked (no rule): {_money(summary, head['unchecked']['amount'])}")
    lines.append("  findings:")
    for cat, entry in summary["by_category"].items():
        lines.append(
            f"    {cat:<18} {entry['severity']:<8} {entry['count']:>7,} "
            f"{entry['quota_at_stake']:>16,} quota {_money(summary, entry['amount_at_stake']):>16}"
        )
    return lines
