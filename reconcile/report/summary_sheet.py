"""The Summary sheet: the verdict, the totals and the discrepancies by category, on one page."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from reconcile.core.aggregates import NO_PATH
from reconcile.core.findings import by_category
from reconcile.core.money import display_amount
from reconcile.core.results import RunResult
from reconcile.core.schema import ACTION, CATEGORIES, EXPLAIN, NOT_REPRICEABLE, SEVERITY
from reconcile.pricing.reasons import reason_text
from reconcile.report.headline import SIGN_CONVENTION, compute_headline, verdict
from reconcile.report.summary import category_amounts, failing_counts
from reconcile.report.totals import Money, compute_totals
from reconcile.report.xlsx import Book, print_setup, set_widths

WIDTHS = [48, 14, 16, 20, 24, 24, 80]


def _period_text(result: RunResult) -> str:
    p = result.period
    offset = p.start.strftime("%z")
    offset = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
    return (
        f"{p.start:%Y-%m-%d %H:%M} to {p.end:%Y-%m-%d %H:%M} (end excluded), "
        f"{p.timezone} ({offset})"
    )


def _keys_text(result: RunResult, shown: int = 8) -> str:
    """Each key by its reference, with the token names its logs carry (never the key)."""
    pairs = result.aggregates.key_tokens
    parts = []
    for ref in result.fetch.key_refs:
        names = sorted(name for key, name in pairs if key == ref and name is not None)
        tokens = ", ".join(names[:shown])
        if len(names) > shown:
            tokens += f" and {len(names) - shown} more"
        parts.append(f"{ref} (tokens: {tokens or 'none'})")
    return "; ".join(parts) or "none"


def write_summary_sheet(
    book: Book,
    ws: Any,
    result: RunResult,
    money: Money,
    category_cells: dict[str, str],
    discrepancies_sheet: str,
) -> None:
    """Lay out the Summary; `category_cells` maps a category to the cell of the
    Discrepancies sheet where its block of rows starts."""
    totals = compute_totals(result)
    headline = compute_headline(result, totals)
    cur = money.currency
    fetch = result.fetch
    set_widths(ws, WIDTHS)
    word, style = verdict(result, headline)
    ws.sheet_properties.tabColor = {"pass": "2E7D32", "fail": "C62828"}.get(style, "7F7F7F")
    print_setup(ws, grid=False)
    ws.page_setup.fitToHeight = 1  # the Summary is one printed page
    c = book.cell
    rows = [0]

    def row(*cells: object, height: float | None = None) -> None:
        rows[0] += 1
        if height is not None:
            ws.row_dimensions[rows[0]].height = height
        ws.append(list(cells))

    def blank() -> None:
        row()

    def header(*names: str) -> None:
        row(*(c(ws, h, "header") for h in names), height=20)

    def amount(quota: int, bold: bool = False) -> object:
        return c(ws, money(quota), "amount_bold" if bold else "amount")

    def quota(value: int, bold: bool = False) -> object:
        return c(ws, value, "int_bold" if bold else "int")

    failing = failing_counts(result.findings, result.fail_on)
    n_failing = sum(failing.values())
    if headline.open_period:
        why = (
            f"OPEN — incomplete period: the logs were read at {headline.cut_off}, before the "
            f"period ended; rerun after {result.period.end:%Y-%m-%d %H:%M}"
        )
    elif result.fail_on == "never":
        why = (
            f"not gated (--fail-on never): {len(result.findings):,} findings reported, "
            "none fails the run"
        )
    else:
        why = f"fails on findings of severity {result.fail_on} or above: {n_failing:,} found"

    row(c(ws, f"Billing reconciliation {result.period.label}", "title"), height=22)
    row(c(ws, "Verdict", "label"), c(ws, word, style), c(ws, why, "indent"), height=30)
    blank()

    # ------------------------------------------------------------ headline
    row(c(ws, "What to act on", "section"))
    header("", "Logs / rows", "Quota", f"Amount ({cur})", "Action")
    over, under = headline.contract_over, headline.contract_under
    row(
        c(ws, "Contract: overcharged (gateway above the rules)", "label"),
        quota(over.count),
        quota(over.quota, True),
        amount(over.quota, True),
        c(ws, "claim a credit" if over.count else "none", "indent"),
    )
    row(
        c(ws, "Contract: undercharged (gateway below the rules)", "label"),
        quota(under.count),
        quota(under.quota),
        amount(under.quota),
        c(ws, "expect a back-charge, or correct the rule" if under.count else "none", "indent"),
    )
    row(
        c(ws, "Contract: net (gross)", "indent"),
        None,
        quota(headline.contract_net),
        amount(headline.contract_net),
        c(ws, f"gross {display_amount(money(headline.contract_gross), cur)}", "indent"),
    )
    if headline.has_book:
        kind = totals.book_kind
        row(
            c(ws, f"Books vs gateway: net spend, gateway − {kind}", "label"),
            None,
            quota(headline.books_net, True),
            amount(headline.books_net, True),
            c(
                ws,
                "of which explained by findings: "
                + display_amount(money(headline.books_explained), cur),
                "indent",
            ),
        )
        for label, part, todo in (
            ("Top-ups not booked", headline.topups_not_booked, "book them as credit"),
            ("Refunds not booked", headline.refunds_not_booked, "book them (they reduce spend)"),
        ):
            row(
                c(ws, label, "indent"),
                quota(part.count),
                quota(part.quota),
                amount(part.quota),
                c(ws, todo if part.count else "none", "indent"),
            )
    row(
        c(ws, "Spend the contract could not check", "label"),
        quota(headline.unchecked.count),
        quota(headline.unchecked.quota),
        amount(headline.unchecked.quota),
        c(
            ws,
            "add rules for the models (see unpriced_model)" if headline.unchecked.count else "none",
            "indent",
        ),
    )
    for sentence in SIGN_CONVENTION.split("; "):
        row(c(ws, sentence[:1].upper() + sentence[1:], "note"))
    blank()
    row(c(ws, "Period", "label"), c(ws, _period_text(result)))
    fetched = fetch.fetched_at.astimezone(result.period.tz).isoformat()
    row(c(ws, "Logs fetched at", "label"), c(ws, fetched))
    row(c(ws, "Gateway", "label"), c(ws, fetch.base_url or "(snapshot)"))
    row(c(ws, "API keys (by reference)", "label"), c(ws, _keys_text(result)))
    row(
        c(ws, "Money", "label"),
        c(
            ws,
            f"{cur}; {money.quota_per_unit:,} quota = 1 USD"
            + ("" if cur == "USD" else f"; 1 USD = {money.rate} {cur}")
            + "; amounts are exact decimals",
        ),
    )
    blank()

    # ------------------------------------------------------------ totals
    row(c(ws, "Gateway logs", "section"))
    header("", "Logs", "Quota", f"Amount ({cur})")
    for name, label, sign in (
        ("consume", "Consume (charged)", 1),
        ("refund", "Refund (returned, reduces spend)", -1),
    ):
        t = totals.logs[name]
        row(c(ws, label), quota(t.count), quota(sign * t.quota), amount(sign * t.quota))
    row(
        c(ws, "Net spend (consume − refund)", "label"),
        None,
        quota(totals.net_spend, True),
        amount(totals.net_spend, True),
    )
    for name, label in (
        ("topup", "Topup (credit bought, apart from spend)"),
        ("error", "Error (not spend)"),
    ):
        t = totals.logs[name]
        row(c(ws, label), quota(t.count), quota(t.quota), amount(t.quota))
    blank()

    row(c(ws, "Charged vs contract vs ledger", "section"))
    header(
        "",
        "Logs / rows",
        "Quota",
        f"Amount ({cur})",
        "Gateway − this (quota)",
        f"Gateway − this ({cur})",
    )
    consume = totals.logs["consume"]
    rep, unp, nr = totals.repriced, totals.unpriced, totals.not_repriceable
    row(
        c(ws, "Gateway charged, all consume logs", "label"),
        quota(consume.count),
        quota(consume.quota, True),
        amount(consume.quota, True),
    )
    for label, part in (
        ("of which re-priced by the rules", rep),
        ("of which unpriced model (not checked)", unp),
        ("of which not re-priceable (not checked)", nr),
    ):
        row(c(ws, label, "indent"), quota(part.count), quota(part.quota), amount(part.quota))
    diff = rep.quota - totals.expected_quota
    row(
        c(ws, "Contract expected, re-priced logs", "label"),
        quota(rep.count),
        quota(totals.expected_quota, True),
        amount(totals.expected_quota, True),
        quota(diff, True),
        amount(diff, True),
    )
    if totals.book is not None:
        kind = totals.book.kind
        pairs = [("consume", consume.quota)]
        if kind != "invoice":
            pairs += [
                ("refund", totals.logs["refund"].quota),
                ("topup", totals.logs["topup"].quota),
            ]
        for name, gateway in pairs:
            b = totals.book_by_type[name]
            sign = -1 if name == "refund" else 1  # refunds negative, as everywhere
            gap = sign * (gateway - b.quota)
            label = f"{kind.capitalize()}, {name} rows" + (
                " (credit, apart from spend)" if name == "topup" else ""
            )
            row(
                c(ws, label, "label" if name == "consume" else None),
                quota(b.count),
                quota(sign * b.quota, name == "consume"),
                amount(sign * b.quota, name == "consume"),
                quota(gap, name == "consume"),
                amount(gap, name == "consume"),
            )
        row(c(ws, f"{kind.capitalize()} file: {totals.book.path}", "note"))
        if totals.unreadable_rows:
            row(
                c(ws, f"{totals.unreadable_rows:,} rows could not be read", "alert"),
                book.link(ws, "Unreadable rows", "Unreadable rows"),
            )
    else:
        row(c(ws, "No ledger or invoice was given: only the pricing was checked.", "note"))
    blank()

    # ------------------------------------------------------------ billing paths, reasons
    row(c(ws, "Consume logs by billing path", "section"))
    header("Billing path (as new-api charged)", "Logs", "Quota", f"Amount ({cur})")
    for name, part in totals.by_path.items():
        label = f"{name} (no rule prices the model)" if name == NO_PATH else name
        row(c(ws, label), quota(part.count), quota(part.quota), amount(part.quota))
    if not totals.by_path:
        row(c(ws, "No consume logs.", "note"))
    blank()
    block = category_cells.get(NOT_REPRICEABLE)
    row(
        c(ws, "Not re-priceable logs by reason", "section"),
        book.link(ws, "their findings", discrepancies_sheet, block) if block else None,
    )
    header("Reason code", "Logs", "Quota", f"Amount ({cur})", "", "", "What it means")
    for code, part in totals.by_reason.items():
        row(
            c(ws, code),
            quota(part.count),
            quota(part.quota),
            amount(part.quota),
            None,
            None,
            c(ws, reason_text(code), "wrap"),
        )
    if not totals.by_reason:
        row(c(ws, "None: every log a rule prices was re-priced.", "note"))
    blank()

    # ------------------------------------------------------------ discrepancies
    counts = by_category(result.findings)
    amounts = category_amounts(result.findings)
    row(
        c(ws, "Discrepancies by category", "section"),
        book.link(ws, f"All {len(result.findings):,} findings", discrepancies_sheet),
    )
    header(
        "Category (click for its rows)",
        "Severity",
        "Findings",
        "Quota at stake",
        f"Amount at stake ({cur})",
        "Findings failing the run",
        "What to do",
    )
    cats = list(CATEGORIES) + sorted(set(counts) - set(CATEGORIES))
    for cat in cats:
        n, q = counts[cat]["count"], counts[cat]["quota"]
        sev = SEVERITY.get(cat, "error")
        name_cell = (
            book.link(ws, cat, discrepancies_sheet, category_cells[cat])
            if cat in category_cells
            else c(ws, cat)
        )
        row(
            name_cell,
            c(ws, sev, f"sev_{sev}" if n else None),
            quota(n, bool(n)),
            quota(q),
            c(ws, amounts.get(cat, Decimal(0)), "amount"),
            quota(failing.get(cat, 0)),
            c(ws, ACTION.get(cat, "") if n else EXPLAIN.get(cat, ""), "wrap" if n else "note"),
            height=30 if n and len(ACTION.get(cat, "")) > 80 else None,
        )
    # no total of money at stake: it would add categories that overlap (a log can be both
    # a pricing mismatch and missing in the ledger) and mix top-ups with spend; the
    # headline above has the figures that add up
    row(
        c(ws, "Total", "label"),
        None,
        quota(len(result.findings), True),
        None,
        None,
        quota(n_failing, True),
    )
    blank()

    # ------------------------------------------------------------ warnings
    warnings = list(dict.fromkeys([*result.warnings, *result.pricing.warnings, *book.notes]))
    if fetch.duplicates:
        warnings.append(f"{fetch.duplicates:,} logs were returned more than once and kept once.")
    if fetch.outside_window:
        warnings.append(
            f"{fetch.outside_window:,} logs came back outside the time window asked for "
            "and were dropped."
        )
    if fetch.other_types:
        warnings.append(f"{fetch.other_types:,} manage/system logs were seen and not kept.")
    row(c(ws, "Warnings", "section"))
    for w in warnings or ["None."]:
        row(c(ws, w, "alert" if warnings else "note"))
    blank()

    # ------------------------------------------------------------ inputs
    row(c(ws, "Inputs", "section"))
    header("Role", "Path", "", "", "", "", "SHA-256")
    for f in result.inputs:
        row(c(ws, f.role), c(ws, f.path), None, None, None, None, c(ws, f.sha256))
    blank()
    row(c(ws, "Sheets", "section"))
    for sheet, caption in book.captions.items():
        row(book.link(ws, sheet, sheet), c(ws, caption, "note"))
