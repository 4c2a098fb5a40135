"""Every file of the bad-rules corpus is refused with one message: file, line, key, and why."""

from __future__ import annotations

import pytest
from conftest import ROOT

from reconcile.errors import InputError
from reconcile.pricing.rules import load_rules

BAD = ROOT / "fixtures" / "rules" / "bad"

#: file -> (line, field, a phrase the message must contain)
EXPECTED: dict[str, tuple[int, str | None, str]] = {
    "syntax-error.toml": (5, "match", "not valid TOML"),
    "unknown-key.toml": (7, "model_ratoi", "did you mean 'model_ratio'"),
    "unknown-top-level-key.toml": (1, "quota_per_units", "did you mean 'quota_per_unit'"),
    "negative-ratio.toml": (4, "completion_ratio", "must be >= 0, not -4"),
    "non-numeric-ratio.toml": (3, "model_ratio", "must be a number, not '1.25'"),
    "infinite-ratio.toml": (3, "model_ratio", "finite"),
    "implausible-ratio.toml": (3, "model_ratio", "12500000 is implausibly large"),
    "unbalanced-glob.toml": (6, "match", "unbalanced '['"),
    "ratio-and-price.toml": (4, "model_price", "not both"),
    "neither-ratio-nor-price.toml": (4, "model_ratio", "needs model_ratio"),
    "price-with-token-ratio.toml": (4, "completion_ratio", "token pricing only"),
    "missing-match.toml": (1, "match", "needs match"),
    "effective-to-before-from.toml": (5, "effective_to", "is not after effective_from"),
    "effective-to-equals-from.toml": (5, "effective_to", "exclusive"),
    "overlapping-ranges.toml": (9, "effective_from", "overlaps the one at line 1"),
    "overlapping-open-rules.toml": (9, "effective_from", "overlaps the one at line 1"),
    "bad-date.toml": (4, "effective_from", "must be a date"),
    "datetime-not-date.toml": (4, "effective_from", "not a date-time"),
    "group-ratio-text.toml": (3, "groups.vip", "must be a number"),
    "negative-tolerance.toml": (2, "tolerance.quota", "must be >= 0"),
    "fractional-tolerance-quota.toml": (2, "tolerance.quota", "whole number"),
    "relative-tolerance-percent.toml": (3, "tolerance.relative", "0.01 = 1%"),
    "zero-exchange-rate.toml": (2, "currency.CNY", "must be > 0"),
    "report-currency-without-rate.toml": (2, "report_currency", "no exchange rate"),
    "zero-quota-per-unit.toml": (1, "quota_per_unit", "must be > 0"),
    "unknown-tool.toml": (4, "tool_prices.web_serch", "unknown tool 'web_serch'"),
    "price-with-audio-ratio.toml": (4, "audio_ratio", "token (model_ratio) rules only"),
    "ratio-with-image-prices.toml": (4, "image_prices", "per-call (model_price) rules only"),
    "tier-without-bound.toml": (1, "tiers.max_prompt_tokens", "every tier but the last"),
    "task-ratio-text.toml": (4, "task_ratios.size.1024x1792", "must be a number"),
    "per-call-overflow-by-pair.toml": (6, "model_price", "beyond the 64-bit quota"),
    "model-as-table.toml": (1, "model", "[[model]]"),
    "ledger-column-not-text.toml": (3, "ledger.columns.Amount", "string"),
    "not-utf8.toml": (1, None, "not UTF-8"),
}


def test_every_corpus_file_has_an_expectation() -> None:
    assert sorted(p.name for p in BAD.glob("*.toml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_rules_are_refused_with_file_line_and_field(name: str) -> None:
    line, field, phrase = EXPECTED[name]
    path = BAD / name
    with pytest.raises(InputError) as caught:
        load_rules(path)
    err = caught.value
    assert err.file == str(path)
    assert err.line == line
    assert err.field == field
    assert phrase in err.message
    # the one-line form the CLI prints: file:line: field: message
    prefix = f"{path}:{line}: " + (f"{field}: " if field else "")
    assert str(err).startswith(prefix)
    assert "\n" not in str(err)
