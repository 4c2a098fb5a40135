"""summary.json: the machine-readable verdict (contract.md, schema_version 1).

The contract's fields come first, in the contract's order and exactly its shape (scripts
compare `period` and `discrepancies` as whole objects); everything after `status` is an
addition, and so are the extra keys of `ledger`. Per-category severity, money at stake and
the count that fails the run are in `categories`. The input files (and their SHA-256) are on
the workbook's Summary sheet, not here: a rerun from the snapshot must give the same summary.
Keys are inserted in a fixed order, so the same run always gives the same bytes.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pandas as pd

from reconcile.core.findings import by_category, signed_sums
from reconcile.core.money import MONEY_PLACES
from reconcile.core.results import RunResult
from reconcile.core.schema import ACTION, CATEGORIES, EXPLAIN, SEVERITY, SEVERITY_RANK
from reconcile.report.headline import SIGN_CONVENTION, Headline, compute_headline, verdict
from reconcile.report.totals import Count, Money, compute_totals, money_of

SCHEMA_VERSION = 1
#: The published JSON Schema of summary.json (shipped with the package; docs/summary.md).
SCHEMA_FILE = Path(__file__).with_name("summary.schema.json")


def summary_schema() -> dict[str, object]:
    """The JSON Schema every summary.json validates against."""
    schema: dict[str, object] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return schema


def amount_text(amount: Decimal) -> str:
    """An exact decimal as JSON text (strings, because JSON numbers are read as floats)."""
    return str(amount.quantize(MONEY_PLACES))


def _count(c: Count) -> dict[str, int]:
    return {"count": c.count, "quota": c.quota}


def failing_counts(findings: pd.DataFrame, fail_on: str) -> dict[str, int]:
    """Per category, how many findings are at or above `fail_on` (what fails the run)."""
    out = dict.fromkeys(CATEGORIES, 0)
    if fail_on == "never" or not len(findings):
        return out
    rank = findings["severity"].map(SEVERITY_RANK).fillna(0)
    hits = findings.loc[rank >= SEVERITY_RANK[fail_on], "category"].value_counts()
    for cat, n in hits.items():
        out[str(cat)] = int(n)
    return out


def category_amounts(findings: pd.DataFrame) -> dict[str, Decimal]:
    """Money at stake per category: the exact sum of the rows' `diff_amount`."""
    out = dict.fromkeys(CATEGORIES, Decimal(0))
    if len(findings) and "diff_amount" in findings:
        for cat, amount in zip(findings["category"], findings["diff_amount"], strict=True):
            out[str(cat)] = out.get(str(cat), Decimal(0)) + Decimal(amount)
    return out


def _figure(count: int | None, quota: int, money: Money) -> dict[str, object]:
    out: dict[str, object] = {} if count is None else {"count": count}
    out.update(quota=quota, amount=amount_text(money(quota)))
    return out


def _headline(h: Headline, money: Money) -> dict[str, object]:
    """The Summary sheet's headline, for machines: each log counted once (headline.py)."""
    books: dict[str, object] | None = None
    if h.has_book:
        books = {
            "gateway_net_spend": _figure(None, h.gateway_net_spend, money),
            "books_net_spend": _figure(None, h.books_net_spend, money),
            "net": _figure(None, h.books_net, money),
            "explained_by_findings": _figure(None, h.books_explained, money),
            "topups_not_booked": _figure(
                h.topups_not_booked.count, h.topups_not_booked.quota, money
            ),
            "refunds_not_booked": _figure(
                h.refunds_not_booked.count, h.refunds_not_booked.quota, money
            ),
        }
    return {
        "sign_convention": SIGN_CONVENTION,
        "contract": {
            "overcharged": _figure(h.contract_over.count, h.contract_over.quota, money),
            "undercharged": _figure(h.contract_under.count, h.contract_under.quota, money),
            "net": _figure(None, h.contract_net, money),
            "gross": _figure(None, h.contract_gross, money),
        },
        "books": books,
        "unchecked": _figure(h.unchecked.count, h.unchecked.quota, money),
    }


def _by_category(
    result: RunResult, money: Money, cats: list[str], failing: dict[str, int]
) -> dict[str, dict[str, object]]:
    """Everything about a category in one place, each quantity under its own name."""
    counts = by_category(result.findings)
    amounts = category_amounts(result.findings)
    contract = signed_sums(result.findings, "contract_diff_quota")
    books = signed_sums(result.findings, "books_diff_quota")
    out: dict[str, dict[str, object]] = {}
    for c in cats:
        entry: dict[str, object] = {
            "count": counts[c]["count"],
            "severity": SEVERITY.get(c, "error"),
            "failing": failing.get(c, 0),
            "quota_at_stake": counts[c]["quota"],
            "amount_at_stake": amount_text(amounts.get(c, Decimal(0))),
        }
        for name, sums in (("contract_diff", contract), ("books_diff", books)):
            if c in sums:
                net = sum(sums[c])
                entry[f"{name}_quota"] = net
                entry[f"{name}_amount"] = amount_text(money(net))
            else:
                entry[f"{name}_quota"] = None
                entry[f"{name}_amount"] = None
        entry["meaning"] = EXPLAIN.get(c, "")
        entry["action"] = ACTION.get(c, "")
        out[c] = entry
    return out


def build_summary(result: RunResult) -> dict[str, object]:
    """The verdict of a computed run as plain JSON-ready data (ints, strings, lists, dicts)."""
    totals = compute_totals(result)
    money = money_of(result)
    headline = compute_headline(result, totals)
    word, _ = verdict(result, headline)
    period, fetch = result.period, result.fetch
    counts = by_category(result.findings)
    amounts = category_amounts(result.findings)
    failing = failing_counts(result.findings, result.fail_on)
    cats = list(CATEGORIES) + sorted(set(counts) - set(CATEGORIES))
    discrepancies = {c: {"count": counts[c]["count"], "quota": counts[c]["quota"]} for c in cats}
    details = {
        c: {
            "severity": SEVERITY.get(c, "error"),
            "amount": amount_text(amounts.get(c, Decimal(0))),
            "failing": failing.get(c, 0),
        }
        for c in cats
    }
    warnings = list(dict.fromkeys([*result.warnings, *result.pricing.warnings]))
    book_consume = totals.book_by_type["consume"].quota
    return {
        "schema_version": SCHEMA_VERSION,
        "period": {
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "timezone": period.timezone,
        },
        "logs": {name: _count(c) for name, c in totals.logs.items()},
        "expected_quota": totals.expected_quota,
        "ledger": {
            "rows": totals.book_rows,
            "quota": totals.book_quota,
            "kind": totals.book_kind,
            "by_type": {name: _count(c) for name, c in totals.book_by_type.items()},
            "unreadable_rows": totals.unreadable_rows,
            # signed: refunds negative, top-ups apart from spend
            "net_spend_quota": totals.book_by_type["consume"].quota
            - totals.book_by_type["refund"].quota,
            "signed_by_type": {
                "consume": totals.book_by_type["consume"].quota,
                "refund": -totals.book_by_type["refund"].quota,
                "topup": totals.book_by_type["topup"].quota,
            },
        },
        "discrepancies": discrepancies,
        "status": result.status,
        # ------------------------------------------------ additions to schema_version 1
        "label": period.label,
        "fail_on": result.fail_on,
        "findings": {
            "count": len(result.findings),
            "failing": sum(failing.values()),
        },
        "categories": details,
        "currency": {
            "code": money.currency,
            "per_usd": str(money.rate),
            "quota_per_unit": str(money.quota_per_unit),
        },
        "net_spend_quota": totals.net_spend,
        "amounts": {
            "consume": amount_text(money(totals.logs["consume"].quota)),
            "refund": amount_text(money(totals.logs["refund"].quota)),
            "topup": amount_text(money(totals.logs["topup"].quota)),
            "net_spend": amount_text(money(totals.net_spend)),
            "repriced_charged": amount_text(money(totals.repriced.quota)),
            "expected": amount_text(money(totals.expected_quota)),
            "ledger": amount_text(money(totals.book_quota)),
            "ledger_consume": amount_text(money(book_consume)),
        },
        "pricing": {
            "consume_logs": totals.logs["consume"].count,
            "repriced": _count(totals.repriced),
            "mismatch": _count(totals.mismatched),
            "unpriced": _count(totals.unpriced),
            "not_repriceable": _count(totals.not_repriceable),
            "not_repriceable_by_reason": {k: c.count for k, c in totals.by_reason.items()},
            "logs_by_path": {k: _count(c) for k, c in totals.by_path.items()},
        },
        "fetch": {
            "fetched_at": fetch.fetched_at.isoformat(),
            "base_url": fetch.base_url,
            "key_refs": list(fetch.key_refs),
            "windows": len(fetch.windows),
            "pages": sum(w.pages for w in fetch.windows),
            "duplicates": fetch.duplicates,
            "outside_window": fetch.outside_window,
            "other_types": fetch.other_types,
        },
        "warnings": warnings,
        "verdict": word,
        "open_period": {"open": headline.open_period, "cut_off": headline.cut_off},
        "headline": _headline(headline, money),
        "by_category": _by_category(result, money, cats, failing),
    }


def summary_json(summary: dict[str, object]) -> str:
    return json.dumps(summary, indent=2, ensure_ascii=False) + "\n"


def write_summary(result: RunResult, path: Path) -> None:
    """Write summary.json (UTF-8, two-space indent, trailing newline)."""
    Path(path).write_text(summary_json(build_summary(result)), encoding="utf-8")
