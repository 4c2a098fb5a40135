"""`reconcile rules diff OLD NEW`: what changed between two rules files, a line per change.

Models are compared by their match pattern and effective dates; for each, every pricing key
(ratios, prices, the billing-path tables, tiers). Group ratios, group pairs, quota_per_unit
and tolerance are compared too. A ratio change also says its effect in percent, since a
finance reviewer reads "model_ratio 1.25 -> 1.5 (+20%)" faster than two numbers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from reconcile.pricing.rules import ModelRule, Rules, plain

#: ModelRule fields that are not prices.
_NOT_PRICES: Final = frozenset({"match", "line", "effective_from", "effective_to"})


def _key(rule: ModelRule) -> str:
    dates = rule.describe_dates()
    return rule.match if dates == "always" else f"{rule.match} ({dates})"


def _show(v: Any) -> str:
    if isinstance(v, Decimal):
        return plain(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_show(x)}" for k, x in sorted(v.items())) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    if hasattr(v, "model_dump"):
        return _show({k: x for k, x in v.model_dump().items() if x is not None})
    return "unset" if v is None else str(v)


def _change(name: str, old: Any, new: Any) -> str:
    text = f"{name} {_show(old)} -> {_show(new)}"
    if isinstance(old, Decimal) and isinstance(new, Decimal) and old != 0:
        pct = (new - old) / old * 100
        text += f" ({'+' if pct > 0 else ''}{plain(pct.quantize(Decimal('0.01')))}%)"
    return text


def _prices(rule: ModelRule) -> dict[str, Any]:
    values = {k: getattr(rule, k) for k in type(rule).model_fields if k not in _NOT_PRICES}
    return {k: v for k, v in values.items() if v not in (None, {}, [])}


def diff_rules(old: Rules, new: Rules) -> list[str]:
    """The changes from `old` to `new`: "+" added, "-" removed, "~" changed."""
    out: list[str] = []
    for name in ("quota_per_unit", "report_currency"):
        a, b = getattr(old, name), getattr(new, name)
        if a != b:
            out.append(f"~ {_change(name, a, b)}")
    if old.tolerance != new.tolerance:
        out.append(f"~ tolerance {_show(old.tolerance)} -> {_show(new.tolerance)}")
    out += _tables("group", old.groups, new.groups)
    pairs_old = {f"{u} using {g}": r for u, p in old.group_pairs.items() for g, r in p.items()}
    pairs_new = {f"{u} using {g}": r for u, p in new.group_pairs.items() for g, r in p.items()}
    out += _tables("group pair", pairs_old, pairs_new)
    before = {_key(r): r for r in old.models}
    after = {_key(r): r for r in new.models}
    for key in before.keys() - after.keys():
        out.append(f"- model {key}")
    for key in after.keys() - before.keys():
        prices = ", ".join(f"{k} {_show(v)}" for k, v in _prices(after[key]).items())
        out.append(f"+ model {key}: {prices}")
    for key in before.keys() & after.keys():
        a, b = _prices(before[key]), _prices(after[key])
        changes = [_change(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys())]
        changes = [c for k, c in zip(sorted(a.keys() | b.keys()), changes, strict=True)
                   if a.get(k) != b.get(k)]  # fmt: skip
        if changes:
            out.append(f"~ model {key}: " + "; ".join(changes))
    return sorted(out, key=lambda line: (line[2:], line[0]))


def _tables(label: str, old: dict[str, Decimal], new: dict[str, Decimal]) -> list[str]:
    out = [f"- {label} {k} ({plain(old[k])})" for k in old.keys() - new.keys()]
    out += [f"+ {label} {k} ({plain(new[k])})" for k in new.keys() - old.keys()]
    out += [
        f"~ {label} {k}: {_change('ratio', old[k], new[k])}"
        for k in old.keys() & new.keys()
        if old[k] != new[k]
    ]
    return out
