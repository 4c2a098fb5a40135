"""The CI outputs: Markdown for the job summary and JUnit XML, one test case per category."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pandas as pd
import pytest
from report_helpers import clean_result, make_result

from reconcile.core.schema import CATEGORIES, findings_frame
from reconcile.report.junit import LISTED, render_junit
from reconcile.report.markdown import md_text, render_markdown
from reconcile.report.summary import build_summary


def _cases(xml: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml.encode("utf-8"))
    assert root.tag == "testsuites"
    return {c.get("name", ""): c for c in root.iter("testcase")}


def test_markdown_shows_verdict_totals_and_every_category() -> None:
    text = render_markdown(build_summary(make_result()))
    assert text.startswith("## ❌ Billing reconciliation 2026-10: **FAIL**")
    assert "| Gateway consume logs | 30 | 465,021 | 0.930042 |" in text
    assert "| Contract expected (rules) | 18 | 267,000 | 0.534 |" in text
    assert "| missing\\_in\\_ledger | error | 4 | 72,007 | 0.144014 | 4 ❌ |" in text
    for cat in CATEGORIES:
        assert md_text(cat) in text
    assert "| out\\_of\\_period | warning | 1 | 777 | 0.001554 | 0 |" in text


def test_markdown_for_a_clean_run_passes() -> None:
    text = render_markdown(build_summary(clean_result()))
    assert text.startswith("## ✅ Billing reconciliation 2026-10: **PASS**")
    assert "❌" not in text


def test_markdown_escapes_text_from_data() -> None:
    result = make_result()
    hostile = "<img src=x onerror=alert(1)> | @octocat [x](http://evil) **b**"
    summary = build_summary(replace(result, warnings=[hostile]))
    text = render_markdown(summary)
    line = next(x for x in text.splitlines() if "octocat" in x)
    assert "<img" not in line
    assert "&lt;img" in line
    assert "@octocat" not in line
    assert "\\|" in line
    assert "\\[x\\]" in line
    assert "\\*\\*b\\*\\*" in line


def test_markdown_reads_a_contract_only_summary() -> None:
    summary = build_summary(make_result())
    contract = {
        k: summary[k] for k in ("schema_version", "period", "logs", "expected_quota", "status")
    }
    contract["ledger"] = {"rows": 3, "quota": 10}
    contract["discrepancies"] = {c: {"count": 0, "quota": 0} for c in CATEGORIES}
    text = render_markdown(contract)
    assert "FAIL" in text
    assert "| Ledger rows | 3 | 10 |" in text


def test_junit_fails_the_categories_at_or_above_fail_on() -> None:
    result = make_result()
    xml = render_junit(build_summary(result), result.findings)
    root = ET.fromstring(xml.encode("utf-8"))
    cases = _cases(xml)
    assert list(cases) == list(CATEGORIES)
    failed = {name for name, case in cases.items() if case.find("failure") is not None}
    errors = set(result.findings.loc[result.findings["severity"] == "error", "category"])
    assert failed == errors
    assert root.get("tests") == str(len(CATEGORIES))
    assert root.get("failures") == str(len(errors))
    failure = cases["missing_in_ledger"].find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert "4 missing_in_ledger findings" in message
    assert "72,007 quota" in message
    assert "0.144014 USD" in message
    # Warnings below the level are reported, not failed.
    out = cases["unpriced_model"].find("system-out")
    assert out is not None
    assert "12 findings below the fail-on level" in (out.text or "")
    assert cases["not_repriceable"].find("failure") is None


@pytest.mark.parametrize(("fail_on", "expected"), [("warning", 8), ("info", 8), ("never", 0)])
def test_junit_follows_the_fail_on_level(fail_on: str, expected: int) -> None:
    result = make_result(fail_on=fail_on)
    xml = render_junit(build_summary(result), result.findings)
    failed = [n for n, c in _cases(xml).items() if c.find("failure") is not None]
    assert len(failed) == expected


def test_junit_escapes_hostile_and_control_text() -> None:
    result = make_result()
    nasty = 'a<b>&"c"\x01]]></failure><x>'
    extra = findings_frame(
        pd.DataFrame(
            {
                "category": ["missing_in_logs"],
                "severity": ["error"],
                "token_name": [nasty],
                "diff_quota": [10**9],
                "explanation": ["planted"],
            }
        )
    )
    findings = pd.concat([extra, result.findings], ignore_index=True)
    xml = render_junit(build_summary(result), findings)
    cases = _cases(xml)  # parses: the text was escaped
    failure = cases["missing_in_logs"].find("failure")
    assert failure is not None
    body = failure.text or ""
    assert 'a<b>&"c"\ufffd]]></failure><x>' in body  # round-trips, control char made visible
    assert "\x01" not in xml


def test_junit_lists_the_largest_findings_then_counts_the_rest() -> None:
    result = make_result()
    many = findings_frame(
        pd.DataFrame(
            {
                "category": ["missing_in_logs"] * (LISTED + 5),
                "severity": ["error"] * (LISTED + 5),
                "log_id": list(range(LISTED + 5)),
                "diff_quota": [1] * (LISTED + 5),
            }
        )
    )
    xml = render_junit(build_summary(result), many)
    failure = _cases(xml)["missing_in_logs"].find("failure")
    assert failure is not None
    lines = (failure.text or "").splitlines()
    assert len(lines) == LISTED + 1
    assert lines[-1].startswith("... and 5 more")


def test_junit_for_a_clean_run_has_no_failures() -> None:
    result = clean_result()
    root = ET.fromstring(render_junit(build_summary(result), result.findings).encode())
    assert root.get("failures") == "0"
    assert len(list(root.iter("testcase"))) == len(CATEGORIES)
