"""`rules check`: each rule restated per million tokens, a worked example, and warnings."""

from __future__ import annotations

from conftest import ROOT
from pricing_helpers import GPT4O, rules

from reconcile.pricing.rules import load_rules
from reconcile.pricing.rules_table import HEADERS, describe_rules


def rows_by_match(text: str) -> dict[str, dict[str, str]]:
    d = describe_rules(rules(text))
    return {row[0]: dict(zip(d.headers, row, strict=True)) for row in d.rows}


def test_each_rule_is_restated_per_million_tokens_with_an_example() -> None:
    rows = rows_by_match(GPT4O)
    gpt = rows["gpt-4o"]
    assert (gpt["kind"], gpt["model_ratio"], gpt["completion_ratio"]) == ("exact", "1.25", "4")
    assert (gpt["input $/1M"], gpt["output $/1M"]) == ("2.5", "10")  # $2.50 / $10 per 1M
    # 1,000 + 1,000 tokens: (1000 + 4000) x 1.25 = 6250 quota = $0.0125
    assert (gpt["1K+1K quota"], gpt["1K+1K USD"]) == ("6250", "0.0125")
    assert rows["claude-*"]["kind"] == "glob"
    dalle = rows["dall-e-3"]
    assert (dalle["model_price"], dalle["completion_ratio"], dalle["input $/1M"]) == (
        "0.04",
        "",
        "",
    )
    assert (dalle["1K+1K quota"], dalle["1K+1K USD"]) == ("20000 per call", "0.04 per call")
    assert gpt["line"] == str(rules(GPT4O).models[0].line)


def test_dates_groups_tolerance_and_currencies_are_shown() -> None:
    d = describe_rules(
        rules(
            GPT4O + '[[model]]\nmatch = "m"\nmodel_ratio = 1\neffective_from = 2026-10-01\n'
            "effective_to = 2026-11-01\n[tolerance]\nquota = 2\nrelative = 0.005\n"
            "[currency]\nCNY = 7.2\n"
        )
    )
    row = dict(zip(d.headers, d.rows[-1], strict=True))
    assert (row["effective_from"], row["effective_to"]) == ("2026-10-01", "2026-11-01")
    assert d.groups == [("default", "1"), ("vip", "0.8")]
    assert d.tolerance == "2 quota, or 0.5% of the larger amount"
    lines = d.summary_lines()
    assert "groups: default 1, vip 0.8 (any other group: 1)" in lines
    assert "currency per USD: CNY 7.2" in lines
    assert "quota_per_unit: 500000 quota = 1 USD" in lines


def test_warnings_point_at_ratios_that_look_wrong() -> None:
    d = describe_rules(
        rules(
            "[groups]\ntrial = 0\n"
            '[[model]]\nmatch = "per-1k-mistake"\nmodel_ratio = 0.0000125\n'  # line 3
            '[[model]]\nmatch = "free"\nmodel_ratio = 0\n'
            '[[model]]\nmatch = "odd-cache"\nmodel_ratio = 1\ncache_ratio = 1.5\n'
            '[[model]]\nmatch = "m"\nmodel_ratio = 1\neffective_to = 2026-10-10\n'
            '[[model]]\nmatch = "m"\nmodel_ratio = 2\neffective_from = 2026-10-15\n'
        )
    )
    text = "\n".join(d.warnings)
    assert (
        "'per-1k-mistake' (line 3) prices 1,000 prompt + 1,000 completion tokens at 0.025 quota"
        in text
    )
    assert "'free' (line 6) is free: model_ratio 0" in text
    assert "cache_ratio 1.5 makes cached input cost more" in text
    assert "group 'trial' has ratio 0" in text
    assert "'m': no rule from 2026-10-10 to 2026-10-15" in text
    assert len(d.warnings) == 5


def test_sensible_rules_have_no_warnings() -> None:
    assert describe_rules(load_rules(ROOT / "rules" / "default.toml")).warnings == []
    assert describe_rules(rules("")).warnings == [
        "no [[model]] rules: every consume log will be unpriced"
    ]


def test_table_lines_align_every_column() -> None:
    d = describe_rules(rules(GPT4O))
    lines = d.table_lines()
    assert lines[0].split() == [w for h in HEADERS for w in h.split()]
    assert len(lines) == 1 + len(d.rows)
    start = lines[0].index("model_ratio")
    assert lines[1][start:].startswith("1.25")  # values sit under their header


def test_billing_path_prices_are_restated_per_million_tokens_or_per_call() -> None:
    d = describe_rules(load_rules(ROOT / "fixtures" / "pricing" / "rules.toml"))
    assert "gpt-4o (line 17): cache read $1.25/1M, cache write $3.125/1M (1h: $5/1M)" in d.details
    assert "gpt-4o (line 17): web_search $0.01 per call ($10 per 1,000)" in d.details
    assert "gpt-4o-audio (line 50): audio input $40/1M, audio output $80/1M" in d.details
    assert "dall-e-3 (line 40): image 1024x1792/hd $0.12 per image" in d.details
    assert "sora-2 (line 45): task size multipliers: 720x1280 x1, 1024x1792 x1.666667" in d.details
    assert (
        "gemini-2.5-pro (line 63): tier for prompts up to 200,000 tokens: input $1.25/1M, "
        "output $10/1M"
    ) in d.details
    assert "group pairs (user group using group): svip using default 0.9" in d.summary_lines()
