"""The logs the vectorised text formula does not settle, priced one by one along their path.

These are the logs of the other billing paths (tasks, images, audio, tools, tiers, group
pairs), logs whose `other` could not be read fast, and text logs whose charge disagreed
with the fast formula (so their mismatch gets a cause, or a defect, or a truncation, or a
chained gateway's semantics explains them). Each is read with json.loads, assigned a path
and judged in exact Decimal arithmetic; nothing escapes as an exception: a value pricing
cannot use makes the log not re-priceable, with the key named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import localcontext
from typing import Any

import numpy as np
import numpy.typing as npt

from reconcile.pricing import paths
from reconcile.pricing.assign import price, terms_for
from reconcile.pricing.columns import LogColumns
from reconcile.pricing.explain import mismatch_cause
from reconcile.pricing.paths.base import OTHER_UNREADABLE, Row, Terms, Unpriceable
from reconcile.pricing.rules import Rules
from reconcile.pricing.verdicts import MISMATCH, Verdict, judge


@dataclass
class RowInputs:
    """Columns of the logs to price row by row (aligned lists)."""

    quota: list[int]
    prompt: list[int]
    completion: list[int]
    model: list[str]
    group: list[str]
    content: list[str]
    other: list[str | None]
    rule_idx: list[int]


def read_other(text: str | None) -> tuple[dict[str, Any], str]:
    """(parsed `other`, problem): {} for an empty one; a problem when it is not an object."""
    if text is None or not text.strip():
        return {}, ""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return {}, "`other` is not valid JSON"
    if not isinstance(obj, dict):
        return {}, "`other` is not a JSON object"
    return obj, ""


def price_rows(inputs: RowInputs, rules: Rules) -> list[Verdict]:
    """A verdict for every row (each has a rule: rule_idx >= 0)."""
    out: list[Verdict] = []
    terms: dict[tuple[int, str, Any], Terms] = {}
    with localcontext() as ctx:
        ctx.prec = 80  # every product of these magnitudes is exact
        for i in range(len(inputs.quota)):
            out.append(_one(inputs, i, rules, terms))
    return out


def _one(
    inputs: RowInputs, i: int, rules: Rules, cache: dict[tuple[int, str, Any], Terms]
) -> Verdict:
    rule = rules.models[inputs.rule_idx[i]]
    other, problem = read_other(inputs.other[i])
    row = Row(
        quota=inputs.quota[i],
        prompt=inputs.prompt[i],
        completion=inputs.completion[i],
        model=inputs.model[i],
        group=inputs.group[i],
        content=inputs.content[i],
        other=other,
    )
    if problem and not rule.per_call:
        return judge(
            row.quota,
            Unpriceable(
                paths.UNKNOWN,
                OTHER_UNREADABLE,
                f"{problem}, so its cache tokens and usage semantics are unknown",
            ),
            rules.tolerance,
        )
    used = other.get("user_group_ratio")
    if isinstance(used, int | float | None):  # the terms depend on these only
        key = (inputs.rule_idx[i], row.group, used)
        terms = cache.get(key) or cache.setdefault(key, terms_for(row, rule, rules))
    else:
        terms = terms_for(row, rule, rules)
    verdict = judge(row.quota, price(row, terms), rules.tolerance)
    if verdict.status == MISMATCH and not verdict.reason:
        return Verdict(verdict.path, MISMATCH, verdict.expected, mismatch_cause(row, terms))
    return verdict


def inputs_of(
    rows: npt.NDArray[np.intp], cols: LogColumns, texts: dict[str, list[Any]]
) -> RowInputs:
    """The inputs of `rows`: their numbers from `cols`, their `texts` (aligned with `rows`)."""
    return RowInputs(
        quota=cols.quota[rows].tolist(),
        prompt=cols.prompt[rows].tolist(),
        completion=cols.completion[rows].tolist(),
        model=texts["model"],
        group=texts["group"],
        content=texts["content"],
        other=texts["other"],
        rule_idx=cols.rule_idx[rows].tolist(),
    )
