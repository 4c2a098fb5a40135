"""The Rules sheet: the pricing contract this run applied, as the reviewer needs to check it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from reconcile.core.results import RunResult
from reconcile.report.tables import rules_used
from reconcile.report.totals import money_of
from reconcile.report.xlsx import Book, print_setup, py_values, set_widths

WIDTHS = [34, 14, 14, 14, 14, 14, 12, 12, 12, 12, 14, 14, 8]
MILLION = Decimal(1_000_000)


def _num(value: Decimal | None) -> object:
    return None if value is None else value


def write_rules_sheet(book: Book, result: RunResult) -> None:
    rules = result.rules
    money = money_of(result)
    ws: Any = book.sheet("Rules")
    set_widths(ws, WIDTHS)
    print_setup(ws, grid=False)
    c = book.cell

    rows = [0]

    def row(*cells: object) -> None:
        rows[0] += 1
        ws.append(list(cells))

    def header(*names: str) -> None:
        ws.row_dimensions[rows[0] + 1].height = 30  # two lines of header text
        row(*(c(ws, n, "header") for n in names))

    row(c(ws, "Pricing rules applied", "title"))
    row(c(ws, "Rules file", "label"), c(ws, rules.path or "(built in)"))
    row(c(ws, "SHA-256", "label"), c(ws, rules.sha256))
    row(c(ws, "Quota per USD", "label"), c(ws, rules.quota_per_unit, "int"))
    row(
        c(ws, "Report currency", "label"),
        c(
            ws,
            money.currency
            if money.currency == "USD"
            else f"{money.currency} (1 USD = {money.rate} {money.currency})",
        ),
    )
    tol = rules.tolerance
    row(c(ws, "Tolerance, absolute (quota)", "label"), c(ws, tol.quota, "int"))
    row(c(ws, "Tolerance, relative (of the larger)", "label"), tol.relative)
    row(c(ws, "Tolerance, seconds (rows without ids)", "label"), c(ws, tol.seconds, "int"))
    row()

    row(
        c(ws, "Model rules", "section"),
        c(ws, "an exact name beats a glob; a longer glob beats a shorter", "note"),
    )
    cur = money.currency
    header(
        "Match",
        f"Input ({cur} per 1M tokens)",
        f"Output ({cur} per 1M tokens)",
        f"Cache read ({cur} per 1M tokens)",
        f"Cache write ({cur} per 1M tokens)",
        f"Per call ({cur})",
        "Model ratio",
        "Completion ratio",
        "Cache ratio",
        "Cache creation ratio",
        "Effective from",
        "Effective to",
        "Line",
    )
    # new-api's ratios as prices: 1M tokens at ratio r cost r * 1M quota, before group ratios
    per_million = MILLION * money.rate / rules.quota_per_unit

    def price(*ratios: Decimal | None) -> object:
        if any(r is None for r in ratios):
            return None
        value = per_million
        for r in ratios:
            value *= cast(Decimal, r)
        return c(ws, value.normalize(), "amount_fine")

    for m in rules.models:
        per_token = m.model_price is None
        base = m.model_ratio if per_token else None
        row(
            c(ws, m.match),
            price(base),
            price(base, m.completion_ratio),
            price(base, m.cache_ratio),
            price(base, m.cache_creation_ratio),
            None if per_token else c(ws, cast(Decimal, m.model_price) * money.rate, "amount_fine"),
            _num(m.model_ratio),
            m.completion_ratio if per_token else None,
            m.cache_ratio if per_token else None,
            m.cache_creation_ratio if per_token else None,
            c(ws, m.effective_from, "date") if m.effective_from else c(ws, "always"),
            c(ws, m.effective_to, "date") if m.effective_to else c(ws, "open"),
            m.line or None,
        )
    if not rules.models:
        row(c(ws, "No model rules: every consume log is unpriced.", "alert"))
    row(
        c(
            ws,
            "Prices are before group ratios (a group's ratio multiplies them). Effective "
            "dates are in the run's time zone; from is inclusive, to exclusive.",
            "note",
        )
    )
    row()

    row(c(ws, "Group ratios", "section"), c(ws, "an unlisted group has ratio 1", "note"))
    header("Group", "Ratio")
    for group, ratio in sorted(rules.groups.items()):
        row(c(ws, group), ratio)
    row()

    row(c(ws, "Exchange rates", "section"))
    header("Currency", "Per 1 USD")
    row(c(ws, "USD"), Decimal(1))
    for code, rate in sorted(rules.currency.items()):
        row(c(ws, code), rate)
    row()

    used = rules_used(result)
    row(c(ws, "Rules used in this run", "section"))
    header("Rule", "Logs", "Charged quota", "Expected quota", "Charged − expected", "Mismatches")
    columns = [py_values(used[k]) for k in ("rule", "logs", "charged", "expected", "mismatch")]
    for rule, logs, charged, expected, mismatch in zip(*columns, strict=True):
        row(
            c(ws, str(rule)),
            c(ws, logs, "int"),
            c(ws, charged, "int"),
            c(ws, expected, "int"),
            c(ws, cast(int, charged) - cast(int, expected), "int"),
            c(ws, mismatch, "int"),
        )
    if not len(used):
        row(c(ws, "No consume log was re-priced.", "note"))
