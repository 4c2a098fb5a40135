"""What `reconcile rules check` shows: every rule as a row a finance reviewer can check.

Each rule is restated per million tokens and priced on a worked example (1,000 prompt +
1,000 completion tokens) so a mistyped ratio stands out against the provider's price sheet.
Library code: this builds text, the CLI prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from itertools import pairwise
from typing import Final

from reconcile.core.money import quota_to_amount
from reconcile.pricing.quota import price_one
from reconcile.pricing.rules import ModelRule, Rules, plain

EXAMPLE_TOKENS: Final = 1000
MILLION: Final = Decimal(1_000_000)
HEADERS: Final = [
    "match",
    "kind",
    "model_ratio",
    "completion_ratio",
    "cache_ratio",
    "cache_creation_ratio",
    "model_price",
    "effective_from",
    "effective_to",
    "input $/1M",
    "output $/1M",
    "1K+1K quota",
    "1K+1K USD",
    "line",
]


@dataclass(frozen=True)
class RulesDescription:
    """A rules file described: a table of rules, the groups, the tolerance, and warnings."""

    path: str
    headers: list[str]
    rows: list[list[str]]
    groups: list[tuple[str, str]]  # (group, ratio) as written; any other group has ratio 1
    tolerance: str
    quota_per_unit: str
    currencies: list[tuple[str, str]]  # (code, units per USD)
    warnings: list[str] = field(default_factory=list)
    #: The billing-path prices of each rule, restated in $ per 1M tokens or per call/unit.
    details: list[str] = field(default_factory=list)
    group_pairs: list[str] = field(default_factory=list)  # "svip using default 0.9"

    def summary_lines(self) -> list[str]:
        """The settings around the table, one per line, for the CLI to print."""
        groups = ", ".join(f"{g} {r}" for g, r in self.groups) or "none listed"
        rates = ", ".join(f"{c} {r}" for c, r in self.currencies) or "USD only"
        pairs = ", ".join(self.group_pairs)
        return [
            f"quota_per_unit: {self.quota_per_unit} quota = 1 USD",
            f"groups: {groups} (any other group: 1)",
            *([f"group pairs (user group using group): {pairs}"] if pairs else []),
            f"tolerance: {self.tolerance}",
            f"currency per USD: {rates}",
        ]

    def table_lines(self) -> list[str]:
        """The rules table as aligned text (header first)."""
        widths = [
            max(len(c) for c in [h, *(r[i] for r in self.rows)]) for i, h in enumerate(self.headers)
        ]
        return [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in [self.headers, *self.rows]
        ]


def describe_rules(rules: Rules) -> RulesDescription:
    qpu = rules.quota_per_unit
    rows = [_row(r, qpu) for r in rules.models]
    tol = rules.tolerance
    tolerance = f"{tol.quota} quota"
    if tol.relative:
        tolerance += f", or {plain(tol.relative * 100)}% of the larger amount"
    return RulesDescription(
        path=rules.path,
        headers=list(HEADERS),
        rows=rows,
        groups=[(g, plain(r)) for g, r in rules.groups.items()],
        tolerance=tolerance,
        quota_per_unit=plain(qpu),
        currencies=[(c, plain(r)) for c, r in rules.currency.items()],
        warnings=_warnings(rules),
        details=[line for r in rules.models for line in rule_details(r, qpu)],
        group_pairs=[
            f"{user} using {using} {plain(ratio)}"
            for user, pairs in rules.group_pairs.items()
            for using, ratio in pairs.items()
        ],
    )


def _usd(d: Decimal) -> str:
    """USD, to six places at most (a millionth of a dollar is below any invoice)."""
    exponent = d.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -6:
        d = d.quantize(Decimal("0.000001"))
    return "$" + plain(d)


def rule_details(r: ModelRule, qpu: Decimal) -> list[str]:
    """The rule's prices beyond input/output, one line each, in USD per 1M tokens or per unit."""
    where = f"{r.match} (line {r.line}):"
    out: list[str] = []
    if r.model_ratio is not None:
        per_m = r.model_ratio * MILLION / qpu  # USD per 1M input tokens
        out.append(
            f"{where} cache read {_usd(per_m * r.cache_ratio)}/1M, cache write "
            f"{_usd(per_m * r.cache_creation_ratio)}/1M (1h: {_usd(per_m * r.creation_ratio_1h)}"
            "/1M)" + (f", image input {_usd(per_m * r.image_ratio)}/1M" if r.image_ratio else "")
        )
        if r.audio_ratio is not None:
            audio_out = r.audio_ratio * (r.audio_completion_ratio or Decimal(1))
            out.append(
                f"{where} audio input {_usd(per_m * r.audio_ratio)}/1M, audio output "
                f"{_usd(per_m * audio_out)}/1M"
            )
        for tier in r.tiers:
            bound = (
                f"prompts up to {tier.max_prompt_tokens:,} tokens"
                if tier.max_prompt_tokens
                else "longer prompts"
            )
            t_in = tier.model_ratio * MILLION / qpu
            t_out = t_in * (
                tier.completion_ratio if tier.completion_ratio is not None else r.completion_ratio
            )
            out.append(f"{where} tier for {bound}: input {_usd(t_in)}/1M, output {_usd(t_out)}/1M")
    if r.audio_input_price is not None:
        out.append(f"{where} audio input priced apart {_usd(r.audio_input_price)}/1M")
    for tool, price in sorted(r.tool_prices.items()):
        out.append(f"{where} {tool} {_usd(price / 1000)} per call ({_usd(price)} per 1,000)")
    for size, price in sorted(r.image_prices.items()):
        out.append(f"{where} image {size} {_usd(price)} per image")
    if r.task_price_per_second is not None:
        out.append(f"{where} task {_usd(r.task_price_per_second)} per second")
    for name, table in sorted(r.task_ratios.items()):
        listed = ", ".join(f"{label} x{plain(v)}" for label, v in table.items())
        out.append(f"{where} task {name} multipliers: {listed}")
    return out


def _row(r: ModelRule, qpu: Decimal) -> list[str]:
    quota = price_one(r, EXAMPLE_TOKENS, EXAMPLE_TOKENS, quota_per_unit=qpu)
    if r.per_call:
        per_million = ["", ""]
        example = [f"{quota} per call", f"{plain(quota_to_amount(quota, qpu))} per call"]
    else:
        assert r.model_ratio is not None
        per_million = [
            plain(r.model_ratio * MILLION / qpu),
            plain(r.model_ratio * r.completion_ratio * MILLION / qpu),
        ]
        example = [str(quota), plain(quota_to_amount(quota, qpu))]
    tokens_only = not r.per_call

    def ratio(value: Decimal | None, shown: bool = True) -> str:
        return plain(value) if value is not None and shown else ""

    return [
        r.match,
        r.kind,
        ratio(r.model_ratio),
        ratio(r.completion_ratio, tokens_only),
        ratio(r.cache_ratio, tokens_only),
        ratio(r.cache_creation_ratio, tokens_only),
        ratio(r.model_price),
        r.effective_from.isoformat() if r.effective_from else "",
        r.effective_to.isoformat() if r.effective_to else "",
        *per_million,
        *example,
        str(r.line),
    ]


def _warnings(rules: Rules) -> list[str]:
    out: list[str] = []
    if not rules.models:
        out.append("no [[model]] rules: every consume log will be unpriced")
    for r in rules.models:
        where = f"{r.match!r} (line {r.line})"
        if r.per_call:
            if r.model_price == 0:
                out.append(f"{where} is free: model_price 0")
            continue
        if r.model_ratio == 0:
            out.append(f"{where} is free: model_ratio 0")
            continue
        raw = _raw_example(r)
        if raw < 1:
            out.append(
                f"{where} prices {EXAMPLE_TOKENS:,} prompt + {EXAMPLE_TOKENS:,} completion tokens "
                f"at {plain(raw)} quota: the gateway charges its minimum of 1 quota and real "
                "usage disappears; is model_ratio right (USD per 1M input tokens / 2)?"
            )
        if r.cache_ratio > 1:
            out.append(
                f"{where}: cache_ratio {plain(r.cache_ratio)} makes cached input cost more "
                "than fresh input"
            )
    for g, ratio in rules.groups.items():
        if ratio == 0:
            out.append(f"group {g!r} has ratio 0: its usage is free")
    out.extend(_gaps(rules))
    return out


def _raw_example(r: ModelRule) -> Decimal:
    """The unrounded quota of the example, to see what the minimum of 1 would hide."""
    assert r.model_ratio is not None
    return (EXAMPLE_TOKENS + EXAMPLE_TOKENS * r.completion_ratio) * r.model_ratio


def _gaps(rules: Rules) -> list[str]:
    """Days between two dated rules of one pattern that no rule of that pattern covers."""
    out: list[str] = []
    by_pattern: dict[str, list[ModelRule]] = {}
    for r in rules.models:
        by_pattern.setdefault(r.match, []).append(r)
    for pattern, group in by_pattern.items():
        if len(group) < 2:
            continue
        ordered = sorted(group, key=lambda r: r.effective_from or date.min)
        for a, b in pairwise(ordered):
            end, start = a.effective_to, b.effective_from
            if end is not None and start is not None and end < start:
                out.append(
                    f"{pattern!r}: no rule from {end.isoformat()} to {start.isoformat()} "
                    f"(lines {a.line} and {b.line}); logs then fall to a glob or are unpriced"
                )
    return out
