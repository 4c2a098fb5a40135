"""The run as JUnit XML: one test case per discrepancy category, so CI shows what failed.

A category's test fails when it has findings at or above the run's `--fail-on` level (the
same rule that sets the exit status); findings below it are reported in system-out.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

import pandas as pd

from reconcile.core.findings import reaches
from reconcile.core.schema import CATEGORIES
from reconcile.report.safe import xml_text

#: Findings listed in a failed test case's body; the rest are counted.
LISTED = 25


def _describe(row: Mapping[Any, Any], currency: str) -> str:
    parts = []
    for key, label in (
        ("log_id", "log"),
        ("ledger_line", "line"),
        ("token_name", "token"),
        ("model_name", "model"),
        ("created_at", "at"),
    ):
        value = row.get(key)
        if value is not None and not pd.isna(value):
            parts.append(f"{label} {value}")
    quota = row.get("diff_quota")
    stake = f"{int(quota):,} quota" if quota is not None and not pd.isna(quota) else "no amount"
    amount = row.get("diff_amount")
    if amount is not None and not pd.isna(amount):
        stake += f" ({amount} {currency})"
    signed = ""
    for key, label in (("contract_diff", "gateway − contract"), ("books_diff", "gateway − books")):
        q = row.get(f"{key}_quota")
        if q is not None and not pd.isna(q):
            signed += f" {label}: {int(q):+,} quota ({row.get(f'{key}_amount')} {currency})."
    action = row.get("action")
    todo = f" Action: {action}." if isinstance(action, str) and action else ""
    text = f"{', '.join(parts)}: {stake} at stake.{signed} {row.get('explanation') or ''}."
    return (text + todo).strip()


def _text(value: object) -> str:
    return xml_text(str(value))


def render_junit(summary: Mapping[str, Any], findings: pd.DataFrame) -> str:
    """JUnit XML text (UTF-8 declared) for the run described by `summary` and `findings`."""
    fail_on = str(summary.get("fail_on", "error"))
    period = summary.get("period", {})
    label = str(summary.get("label") or period.get("start", "period"))
    currency = str((summary.get("currency") or {}).get("code", ""))
    found = summary.get("discrepancies", {})
    names = [c for c in CATEGORIES if c in found] + sorted(set(found) - set(CATEGORIES))
    present = findings["category"].astype("string") if len(findings) else pd.Series(dtype="string")

    cases = []
    failures = 0
    for cat in names:
        rows = findings[(present == cat).fillna(False)] if len(findings) else findings
        entry = {**found.get(cat, {}), **summary.get("categories", {}).get(cat, {})}
        count = int(entry.get("count", len(rows)))
        quota = int(entry.get("quota", 0))
        amount = entry.get("amount")
        stake = f"{quota:,} quota" + (f" ({amount} {currency})" if amount is not None else "")
        case = ET.Element(
            "testcase", {"classname": _text(f"reconcile.{label}"), "name": _text(cat), "time": "0"}
        )
        if reaches(rows, fail_on):
            failures += 1
            severity = ", ".join(sorted({str(s) for s in rows["severity"].dropna()}))
            failure = ET.SubElement(
                case,
                "failure",
                {
                    "message": _text(
                        f"{count:,} {cat} finding{'s' * (count != 1)} ({severity}), "
                        f"{stake} at stake; the run fails on {fail_on} or above"
                    ),
                    "type": _text(cat),
                },
            )
            listed = rows.head(LISTED).to_dict("records")
            body = [_describe(r, currency) for r in listed]
            if len(rows) > LISTED:
                body.append(f"... and {len(rows) - LISTED:,} more in discrepancies.csv")
            failure.text = _text("\n".join(body))
        elif count:
            out = ET.SubElement(case, "system-out")
            out.text = _text(f"{count:,} findings below the fail-on level ({fail_on}): {stake}")
        cases.append(case)

    attrs = {"tests": str(len(cases)), "failures": str(failures), "errors": "0", "skipped": "0"}
    root = ET.Element("testsuites", {"name": "reconcile", **attrs})
    suite = ET.SubElement(root, "testsuite", {"name": _text(f"reconcile {label}"), **attrs})
    fetched = (summary.get("fetch") or {}).get("fetched_at")
    if fetched:
        suite.set("timestamp", _text(fetched))
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("period.start", period.get("start")),
        ("period.end", period.get("end")),
        ("period.timezone", period.get("timezone")),
        ("status", summary.get("status")),
        ("fail_on", fail_on),
    ):
        if value is not None:
            ET.SubElement(props, "property", {"name": key, "value": _text(value)})
    suite.extend(cases)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
