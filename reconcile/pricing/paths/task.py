"""Async tasks (video, music): the submission and its later settlement.

Submission (relay/relay_task.go, RelayTaskSubmit; logged by service LogTaskConsumption):

    quota = model_price x quota_per_unit x group_ratio x every multiplier in OtherRatios

computed in float64 and converted with int() (so the floor is accepted too). The
multipliers (seconds, size, resolution...) appear only in `content`, printed with two
decimals: "操作 generate, 计算参数：seconds: 5.00, size: 1.67" ("按次计费" = per call, none).
The contract: seconds x (task_price_per_second, else model_price, as new-api does), times,
for every other multiplier, the rule's task_ratios[name] entry whose value prints the same.

Settlement (a later consume log with task_id and pre_consumed_quota / actual_quota /
quota_delta in `other`): the log's quota is the difference actual - pre-charged, possibly
negative. The arithmetic is checked; the actual quota is the upstream's measure, which the
rules cannot reproduce, so a consistent settlement is not re-priceable, never a mismatch.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Final

from reconcile.pricing import paths
from reconcile.pricing.paths.base import (
    BillingPath,
    Charge,
    Priced,
    Reason,
    Row,
    Terms,
    Unpriceable,
)

_PARAM: Final = re.compile(r"([A-Za-z_][\w-]*)\s*:\s*(-?\d+(?:\.\d+)?)")
#: Where a submission's `content` lists its multipliers (a regex, also used on columns).
PARAMS_AT: Final = r"(?:计算参数|pricing params)\s*[:：]"
_PARAMS_AT: Final = re.compile(PARAMS_AT)
_CENT: Final = Decimal("0.01")
SETTLE_KEYS: Final = ("quota_delta", "actual_quota", "pre_consumed_quota", "pre_consumed")
SUBMIT_FLAG: Final = "is_task"
PRICED_BY_TOKENS: Final = Reason(
    "task_priced_by_tokens", "an async task priced by tokens, which the log does not record"
)
SECONDS_UNREADABLE: Final = Reason(
    "task_seconds_unreadable", "an async task whose seconds in `content` are not a whole number"
)
RATIO_UNPRICED: Final = Reason(
    "task_ratio_unpriced", "an async task multiplier the rules do not hold (task_ratios)"
)
RATIO_NOT_IN_CONTRACT: Final = Reason(
    "task_ratio_not_in_contract", "an async task multiplier not among the rules' task_ratios"
)
SETTLEMENT: Final = Reason(
    "task_settlement", "an async task's settlement: the actual quota is the upstream's measure"
)
SETTLEMENT_INCOMPLETE: Final = Reason(
    "task_settlement_incomplete", "an async task's settlement without its amounts"
)


def is_settlement(row: Row) -> bool:
    other = row.other  # the disjoint test first: most logs have none of these keys
    return not other.keys().isdisjoint(SETTLE_KEYS) and any(
        other.get(k) is not None for k in SETTLE_KEYS
    )


def is_submission(row: Row) -> bool:
    return row.flag(SUBMIT_FLAG) or bool(_PARAMS_AT.search(row.content))


def task_params(content: str) -> dict[str, Decimal]:
    """The multipliers a task log's content lists (name -> value as printed)."""
    at = _PARAMS_AT.search(content)
    if not at:
        return {}
    return {m.group(1): Decimal(m.group(2)) for m in _PARAM.finditer(content, at.end())}


def _prints_as(value: Decimal, shown: Decimal) -> bool:
    """Whether Go's %.2f of `value` can read `shown` (either rounding of a half)."""
    return any(value.quantize(_CENT, rounding=r) == shown for r in (ROUND_HALF_UP, ROUND_HALF_EVEN))


def price_submission(row: Row, terms: Terms) -> Charge | Unpriceable:
    rule = terms.rule
    if rule.model_price is None:
        return Unpriceable(
            paths.TASK_SUBMIT,
            PRICED_BY_TOKENS,
            "an async task priced by tokens; its tokens are not in the log",
        )
    price = rule.model_price
    multiplier = Decimal(1)
    for name, shown in task_params(row.content).items():
        if name == "seconds":
            if shown != shown.to_integral_value() or shown < 0:
                return Unpriceable(
                    paths.TASK_SUBMIT, SECONDS_UNREADABLE, f"seconds {shown} in content"
                )
            if rule.task_price_per_second is not None:
                price = rule.task_price_per_second
            multiplier *= shown
            continue
        table = rule.task_ratios.get(name)
        if not table:
            return Unpriceable(
                paths.TASK_SUBMIT,
                RATIO_UNPRICED,
                f"the gateway applied a {name} multiplier of {shown} (task_ratios.{name} is "
                "not in the rules)",
            )
        fits = [v for v in table.values() if _prints_as(v, shown)]
        if not fits and len(table) > 1:
            listed = ", ".join(f"{k} {v}" for k, v in table.items())
            return Unpriceable(
                paths.TASK_SUBMIT,
                RATIO_NOT_IN_CONTRACT,
                f"the gateway applied a {name} multiplier of {shown}; the rules list {listed}",
            )
        multiplier *= fits[0] if fits else next(iter(table.values()))
    exact = terms.call(price) * multiplier
    return Charge(paths.TASK_SUBMIT, exact, truncates=True)


def price_settlement(row: Row) -> Charge | Unpriceable:
    """A settlement's quota must be actual - pre-charged; the actual is not re-priceable."""
    actual = row.number("actual_quota")
    pre = row.number("pre_consumed_quota")
    if pre is None:
        pre = row.number("pre_consumed")
    delta = row.number("quota_delta")
    if actual is not None and pre is not None:
        expected = actual - pre
    elif delta is not None:
        expected = delta
    else:
        return Unpriceable(
            paths.TASK_SETTLE, SETTLEMENT_INCOMPLETE, "a task settlement without its amounts"
        )
    if delta is not None and delta != expected:
        return Charge(paths.TASK_SETTLE, expected)
    if Decimal(row.quota) != expected:
        return Charge(paths.TASK_SETTLE, expected)
    return Unpriceable(paths.TASK_SETTLE, SETTLEMENT, settlement_reason(actual, pre, expected))


def settlement_reason(
    actual: Decimal | int | None, pre: Decimal | int | None, expected: int | Decimal
) -> str:
    """The words of a consistent settlement (also worded for the column tier, settle_fast)."""
    return (
        f"an async task's settlement: actual {_q(actual)} - pre-charged {_q(pre)} = "
        f"{_q(expected)} as logged; the actual quota is the upstream's measure"
    )


def _q(d: Decimal | int | None) -> str:
    return "?" if d is None else f"{int(d):,}"


def _settle(row: Row, terms: Terms) -> Priced:
    return price_settlement(row)


#: A settlement is tried first: it carries the task's flags and content as well.
SETTLE: Final = BillingPath(
    paths.TASK_SETTLE,
    rule_keys=(),
    marks=SETTLE_KEYS,
    takes=lambda row, rule: is_settlement(row),
    price=_settle,
    reasons=(SETTLEMENT, SETTLEMENT_INCOMPLETE),
)
SUBMIT: Final = BillingPath(
    paths.TASK_SUBMIT,
    rule_keys=("model_price", "task_price_per_second", "task_ratios"),
    marks=(SUBMIT_FLAG,),
    content=PARAMS_AT,
    takes=lambda row, rule: is_submission(row),
    price=price_submission,
    reasons=(PRICED_BY_TOKENS, SECONDS_UNREADABLE, RATIO_UNPRICED, RATIO_NOT_IN_CONTRACT),
)
