"""The run's verdict as GitHub-flavoured Markdown, for $GITHUB_STEP_SUMMARY.

Built from summary.json alone, so a CI step can render it from a stored summary too. Text
that came from data (warnings quote model names) is escaped: no Markdown, no HTML, no
@-mentions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from reconcile.core.schema import CATEGORIES, SEVERITY

# Characters that start markup anywhere in a line (or end a table cell); the rest only matter
# at the start of a line, and every line here starts with text of our own.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
MAX_WARNINGS = 20


def md_text(text: object) -> str:
    """Plain text safe inside Markdown (and a table cell): nothing in it is markup."""
    s = " ".join(str(text).split())
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return s.replace("@", "&#64;")


def _int(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else "–"


def _amount(value: object) -> str:
    """An exact decimal string, with thousands separators and trailing zeros trimmed to 2."""
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return "–"
    text = f"{d:,f}"
    if "." in text:
        whole, frac = text.split(".")
        frac = frac.rstrip("0").ljust(2, "0")
        text = f"{whole}.{frac}"
    return text


def _get(d: Mapping[str, Any], *path: str) -> Any:
    cur: Any = d
    for key in path:
        if not isinstance(cur, Mapping) or key not in cur:
            return None
        cur = cur[key]
    return cur


def _headline_lines(summary: Mapping[str, Any], cur: str) -> list[str]:
    """The headline figures (signed: gateway minus contract, gateway minus books)."""
    head = summary.get("headline")
    if not isinstance(head, Mapping):
        return []
    out = []
    if _get(summary, "open_period", "open"):
        cut = md_text(_get(summary, "open_period", "cut_off"))
        out += [f"**Open period**: the logs were read at {cut}, before the period ended.", ""]
    rows = [
        ("Contract: overcharged", _get(head, "contract", "overcharged")),
        ("Contract: undercharged", _get(head, "contract", "undercharged")),
        ("Contract: net", _get(head, "contract", "net")),
        ("Books vs gateway: net spend", _get(head, "books", "net")),
        ("Top-ups not booked", _get(head, "books", "topups_not_booked")),
        ("Refunds not booked", _get(head, "books", "refunds_not_booked")),
        ("Spend not checked against the contract", _get(head, "unchecked")),
    ]
    out += [f"| | Quota | Amount ({md_text(cur)}) |", "| --- | ---: | ---: |"]
    for name, fig in rows:
        if isinstance(fig, Mapping):
            out.append(f"| {name} | {_int(fig.get('quota'))} | {_amount(fig.get('amount'))} |")
    out += ["", md_text(head.get("sign_convention", "")), ""]
    return out


def render_markdown(summary: Mapping[str, Any]) -> str:
    """A verdict line, the totals and the discrepancies by category, as Markdown."""
    status = str(summary.get("status", "fail"))
    ok = status == "pass"
    period = summary.get("period", {})
    label = summary.get("label") or f"{period.get('start', '?')} to {period.get('end', '?')}"
    cur = _get(summary, "currency", "code") or ""
    amounts = summary.get("amounts", {})
    fail_on = summary.get("fail_on")
    word = str(summary.get("verdict") or ("PASS" if ok else "FAIL"))
    mark = "✅" if word == "PASS" else ("⚠️" if word in ("NOT GATED", "INCOMPLETE") else "❌")
    lines = [
        f"## {mark} Billing reconciliation {md_text(label)}: **{md_text(word)}**",
        "",
        f"Period {md_text(period.get('start', '?'))} to {md_text(period.get('end', '?'))} "
        f"(end excluded), {md_text(period.get('timezone', '?'))}."
        + (f" Fails on findings of severity `{md_text(fail_on)}` or above." if fail_on else ""),
        "",
    ]

    lines += _headline_lines(summary, str(cur))
    money_col = f" Amount ({md_text(cur)}) |" if cur else ""
    sep = " ---: |" if cur else ""
    lines += [f"| | Count | Quota |{money_col}", f"| --- | ---: | ---: |{sep}"]

    def total(name: str, count: object, quota: object, amount_key: str | None) -> None:
        money = f" {_amount(amounts.get(amount_key))} |" if cur and amount_key else ""
        money = money or (" |" if cur else "")
        lines.append(f"| {name} | {_int(count)} | {_int(quota)} |{money}")

    logs = summary.get("logs", {})
    for name in ("consume", "refund", "topup", "error"):
        entry = logs.get(name, {})
        total(
            f"Gateway {name} logs",
            entry.get("count"),
            entry.get("quota"),
            name if name != "error" else None,
        )
    if "net_spend_quota" in summary:
        total("**Net spend** (consume − refund)", None, summary["net_spend_quota"], "net_spend")
    repriced = _get(summary, "pricing", "repriced") or {}
    if repriced:
        total(
            "Gateway charged, re-priced logs",
            repriced.get("count"),
            repriced.get("quota"),
            "repriced_charged",
        )
    total(
        "Contract expected (rules)",
        repriced.get("count"),
        summary.get("expected_quota"),
        "expected",
    )
    ledger = summary.get("ledger", {})
    kind = md_text(str(ledger.get("kind", "ledger")).capitalize())
    consume = _get(ledger, "by_type", "consume")
    if consume is not None and ledger.get("rows"):
        total(f"{kind} consume rows", consume.get("count"), consume.get("quota"), "ledger_consume")
    elif ledger.get("kind") != "none" and ledger.get("rows"):
        total(f"{kind} rows", ledger.get("rows"), ledger.get("quota"), "ledger")
    lines.append("")

    lines += [
        f"| Category | Severity | Findings | Quota at stake |"
        f"{f' Amount ({md_text(cur)}) |' if cur else ''} Failing |",
        f"| --- | --- | ---: | ---: |{' ---: |' if cur else ''} ---: |",
    ]
    found = summary.get("discrepancies", {})
    details = summary.get("categories", {})
    names = [c for c in CATEGORIES if c in found] + sorted(set(found) - set(CATEGORIES))
    for cat in names:
        entry = {**found[cat], **details.get(cat, {})}
        failing = entry.get("failing")
        mark = f"{_int(failing)} ❌" if isinstance(failing, int) and failing else _int(failing)
        amount = f" {_amount(entry.get('amount'))} |" if cur else ""
        lines.append(
            f"| {md_text(cat)} | {md_text(entry.get('severity', SEVERITY.get(cat, '')))} | "
            f"{_int(entry.get('count'))} | {_int(entry.get('quota'))} |{amount} {mark} |"
        )

    warnings = summary.get("warnings") or []
    if warnings:
        lines += ["", "**Warnings**", ""]
        lines += [f"- {md_text(w)}" for w in warnings[:MAX_WARNINGS]]
        if len(warnings) > MAX_WARNINGS:
            lines.append(f"- … and {len(warnings) - MAX_WARNINGS} more (see summary.json)")
    lines += ["", "Every finding is in `discrepancies.csv`, with an action for each."]
    return "\n".join(lines) + "\n"
