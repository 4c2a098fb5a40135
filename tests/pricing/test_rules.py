"""Rules files: exact numbers, defaults, rule selection, effective dates, and the default file."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import ROOT
from pricing_helpers import SHANGHAI, at, rules

from reconcile.errors import InputError
from reconcile.pricing.rules import Tolerance, glob_problem, load_rules, parse_rules
from reconcile.pricing.stage import price_one


def test_ratios_are_the_decimals_written_not_binary_floats() -> None:
    r = rules(
        """
        [groups]
        vip = 0.1
        [[model]]
        match = "a"
        model_ratio = 0.075
        completion_ratio = 8.333333
        cache_ratio = 1.2500000000000000001
        cache_creation_ratio = 1e-5
        """
    )
    m = r.models[0]
    assert m.model_ratio == Decimal("0.075")  # float(0.075) is 0.07499999999999999722...
    assert m.completion_ratio == Decimal("8.333333")
    assert m.cache_ratio == Decimal("1.2500000000000000001")  # a float would collapse it to 1.25
    assert m.cache_creation_ratio == Decimal("0.00001")
    assert r.groups["vip"] == Decimal("0.1")


def test_unset_ratios_take_new_apis_defaults() -> None:
    m = rules('[[model]]\nmatch = "a"\nmodel_ratio = 2\n').models[0]
    assert (m.completion_ratio, m.cache_ratio, m.cache_creation_ratio) == (1, 1, Decimal("1.25"))
    assert m.creation_ratio_1h == Decimal("2.0")  # 1.25 x 6/3.75
    assert m.image_ratio is None
    assert m.model_price is None


def test_each_rule_knows_its_line() -> None:
    r = rules(
        '# header\nquota_per_unit = 500000\n\n[[model]]\nmatch = "a"\nmodel_ratio = 1\n\n'
        '[groups]\nvip = 0.8\n\n[[model]]  # second\nmatch = "b"\nmodel_price = 0.04\n'
    )
    assert [m.line for m in r.models] == [4, 11]


def test_exact_name_beats_glob_and_longer_glob_beats_shorter() -> None:
    r = rules(
        """
        [[model]]
        match = "gpt-*"
        model_ratio = 5
        [[model]]
        match = "gpt-4o*"
        model_ratio = 1.25
        [[model]]
        match = "gpt-4o-mini"
        model_ratio = 0.075
        [[model]]
        match = "gpt-4o-mini-*"
        model_ratio = 0.08
        """
    )
    tz = ZoneInfo("UTC")

    def ratio(model: str) -> Decimal | None:
        rule = r.rule_for(model, 0, tz)
        return rule.model_ratio if rule else None

    assert ratio("gpt-4o-mini") == Decimal("0.075")  # exact, though three globs match
    assert ratio("gpt-4o-mini-2024-07-18") == Decimal("0.08")  # the longest glob
    assert ratio("gpt-4o-2024-11-20") == Decimal("1.25")
    assert ratio("gpt-3.5-turbo") == Decimal(5)
    assert ratio("claude-3") is None
    assert ratio("GPT-4o") is None  # names are case-sensitive, as the gateway's are


def test_glob_character_sets_work() -> None:
    r = rules('[[model]]\nmatch = "claude-3-[57]-sonnet*"\nmodel_ratio = 1.5\n')
    tz = ZoneInfo("UTC")
    assert r.rule_for("claude-3-7-sonnet-20250219", 0, tz) is not None
    assert r.rule_for("claude-3-6-sonnet", 0, tz) is None


def test_a_rule_switches_at_local_midnight_of_the_runs_time_zone() -> None:
    r = rules(
        """
        [[model]]
        match = "m"
        model_ratio = 0.075
        effective_to = 2026-10-15
        [[model]]
        match = "m"
        model_ratio = 0.06
        effective_from = 2026-10-15
        """
    )
    midnight = at("2026-10-15 00:00:00")  # Asia/Shanghai: 2026-10-14T16:00:00Z

    def ratio(ts: int, tz: ZoneInfo = SHANGHAI) -> Decimal | None:
        rule = r.rule_for("m", ts, tz)
        return rule.model_ratio if rule else None

    assert ratio(midnight - 1) == Decimal("0.075")
    assert ratio(midnight) == Decimal("0.06")  # from is inclusive, to exclusive
    # the same instant is still 14 October in UTC
    assert ratio(midnight, ZoneInfo("UTC")) == Decimal("0.075")
    assert ratio(at("2026-10-15 00:00:00", ZoneInfo("UTC"))) == Decimal("0.06")


def test_outside_every_range_of_the_best_pattern_the_next_pattern_prices() -> None:
    # the contract's own example: gpt-4o has its own ratio from the 15th, the glob before
    r = rules(
        """
        [[model]]
        match = "gpt-4o*"
        model_ratio = 1.25
        [[model]]
        match = "gpt-4o"
        model_ratio = 1.0
        effective_from = 2026-10-15
        """
    )
    assert r.rule_for("gpt-4o", at("2026-10-14 23:59:59"), SHANGHAI).model_ratio == Decimal("1.25")  # type: ignore[union-attr]
    assert r.rule_for("gpt-4o", at("2026-10-15 00:00:00"), SHANGHAI).model_ratio == 1  # type: ignore[union-attr]


def test_adjacent_ranges_of_one_pattern_are_not_an_overlap() -> None:
    r = rules(
        """
        [[model]]
        match = "m"
        model_ratio = 1
        effective_from = 2026-10-01
        effective_to = 2026-10-15
        [[model]]
        match = "m"
        model_ratio = 2
        effective_from = 2026-10-15
        """
    )
    assert [m.effective_from for m in r.models] == [date(2026, 10, 1), date(2026, 10, 15)]


def test_dates_may_be_quoted() -> None:
    r = rules('[[model]]\nmatch = "m"\nmodel_ratio = 1\neffective_from = "2026-10-15"\n')
    assert r.models[0].effective_from == date(2026, 10, 15)


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("gpt-4o[", "unbalanced '['"),
        ("gpt-[!]x", "unbalanced '['"),
        ("gpt]", "']' without '['"),
        ("a[]b]", None),  # fnmatch: a set holding ']' then 'b'... closed by the last ']'
        ("", "empty"),
        (" gpt-4o", "spaces"),
        ("gpt-4o-[mn]ini*", None),
        ("o?-mini", None),
    ],
)
def test_glob_problems(pattern: str, problem: str | None) -> None:
    found = glob_problem(pattern)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_tolerance_absolute_or_relative_to_the_larger_amount() -> None:
    t = Tolerance(quota=1, relative=Decimal("0.01"))
    assert t.allows(101, 100)  # 1 quota
    assert t.allows(1010, 1000)  # 10 = 1% of 1010 > 1% of 1000... of the larger
    assert t.allows(1000, 1010)
    assert not t.allows(1011, 1000)  # 11 > 10.11
    assert not Tolerance(quota=0).allows(1, 0)


def test_column_maps_and_report_currency_are_kept() -> None:
    r = rules(
        'report_currency = "cny"\n[currency]\nCNY = 7.2\n'
        '[ledger.columns]\n"Log ID" = "log_id"\n[invoice.columns]\n"Model" = "model_name"\n'
    )
    assert r.report_currency == "CNY"
    assert r.rate("cny") == Decimal("7.2")
    assert r.ledger.columns == {"Log ID": "log_id"}
    assert r.invoice.columns == {"Model": "model_name"}


def test_load_rules_records_path_and_hash(tmp_path: Path) -> None:
    p = tmp_path / "r.toml"
    p.write_bytes(b'\xef\xbb\xbf[[model]]\nmatch = "a"\nmodel_ratio = 1\n')  # with a BOM
    r = load_rules(p)
    assert r.path == str(p)
    assert len(r.sha256) == 64
    with pytest.raises(InputError, match="cannot read"):
        load_rules(tmp_path / "missing.toml")


def test_the_default_rules_load_and_price_known_models() -> None:
    r = load_rules(ROOT / "rules" / "default.toml")
    tz = ZoneInfo("UTC")
    expect = {
        "gpt-4o": ("1.25", "4"),
        "gpt-4o-2024-11-20": ("1.25", "4"),
        "gpt-4o-mini": ("0.075", "4"),
        "gpt-4.1-mini-2025-04-14": ("0.2", "4"),
        "o3-mini": ("0.55", "4"),
        "claude-sonnet-4-20250514": ("1.5", "5"),
        "claude-opus-4-5-20251101": ("2.5", "5"),
        "claude-opus-4-1-20250805": ("7.5", "5"),
        "gemini-2.5-flash-lite": ("0.05", "4"),
        "deepseek-reasoner": ("0.14", "1.5"),
        "text-embedding-3-small": ("0.01", "1"),
    }
    for model, (ratio, completion) in expect.items():
        rule = r.rule_for(model, 0, tz)
        assert rule is not None, model
        assert (rule.model_ratio, rule.completion_ratio) == (Decimal(ratio), Decimal(completion))
    dalle = r.rule_for("dall-e-3", 0, tz)
    assert dalle is not None
    assert price_one(dalle, 1, 0, group_ratio=r.group_ratio("vip")) == 16000
    assert r.rule_for("gpt-4o-realtime-preview", 0, tz) is None  # priced differently: left out
    # $2.50 per 1M input tokens and $10 per 1M output tokens
    gpt4o = r.rule_for("gpt-4o", 0, tz)
    assert gpt4o is not None
    assert price_one(gpt4o, 1_000_000, 0) == 2 * 625_000
    assert price_one(gpt4o, 0, 1_000_000) == 5_000_000


def test_the_worked_example_in_the_docs_is_right() -> None:
    text = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert "5,325 quota = $0.01065" in text
    rule = parse_rules(
        '[[model]]\nmatch = "claude-sonnet-4-*"\nmodel_ratio = 1.5\ncompletion_ratio = 5\n'
        "cache_ratio = 0.1\ncache_creation_ratio = 1.25\n"
    ).models[0]
    quota = price_one(rule, 2000, 400, cache_tokens=500)
    assert quota == 5325
    assert Decimal(quota) / 500000 == Decimal("0.01065")
    contract = 1500 * Decimal("3.00") + 500 * Decimal("0.30") + 400 * Decimal("15.00")
    assert contract / 1_000_000 == Decimal("0.01065")
