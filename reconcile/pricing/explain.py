"""Words for the reviewer: why a log is a finding, and the findings table, a column at a time.

A mismatch names its cause: a known gateway defect, or the ratios or prices in the log's
`other` that differ from the contract's (compared as the exact decimals Go wrote, so float
noise never reads as a difference), or that the log's own ratios agree yet the charge does not.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reconcile.core import schema
from reconcile.core.tolerance import abs_diff
from reconcile.pricing.columns import Logs, Outcome
from reconcile.pricing.paths.base import Row, Terms
from reconcile.pricing.rules import ModelRule, Rules, plain
from reconcile.pricing.verdicts import MISMATCH, NOT_REPRICEABLE, STATUSES, UNPRICED

_EMPTY: Final = pa.scalar("", pa.large_string())
_CATEGORY: Final = {
    MISMATCH: schema.PRICING_MISMATCH,
    UNPRICED: schema.UNPRICED_MODEL,
    NOT_REPRICEABLE: schema.NOT_REPRICEABLE,
}
_SAME: Final = Decimal("1e-9")  # float64 ratios closer than this are the same ratio


def mismatch_cause(row: Row, terms: Terms) -> str:
    """Which of the log's ratios or prices differ from the contract's, in words."""
    rule = terms.rule
    parts: list[str] = []

    def differs(theirs: Decimal | None, mine: Decimal) -> bool:
        return theirs is not None and abs(theirs - mine) > _SAME * max(abs(theirs), abs(mine))

    price = row.number("model_price")
    they_per_call = price is not None and price > 0
    if rule.per_call and not they_per_call and (row.number("model_ratio") or 0) > 0:
        parts.append(
            f"gateway priced per token (model_ratio {_n(row.number('model_ratio'))}), "
            f"contract per call (model_price {plain(rule.model_price or Decimal(0))})"
        )
    elif not rule.per_call and they_per_call:
        parts.append(
            f"gateway priced per call (model_price {_n(price)}), contract per token "
            f"(model_ratio {plain(rule.model_ratio or Decimal(0))})"
        )
    elif rule.per_call and differs(price, rule.model_price or Decimal(0)):
        contract = plain(rule.model_price or Decimal(0))
        parts.append(f"gateway used model_price {_n(price)}, contract {contract}")
    elif not rule.per_call:
        checks: list[tuple[str, Decimal, bool]] = [
            ("model_ratio", rule.model_ratio or Decimal(0), True)
        ]
        checks.append(("completion_ratio", rule.completion_ratio, row.completion > 0))
        cached = _has(row, "cache_tokens")
        checks.append(("cache_ratio", rule.cache_ratio, cached))
        writes = _has(row, "cache_creation_tokens")
        checks.append(("cache_creation_ratio", rule.cache_creation_ratio, writes))
        for key, mine, shaped in checks:
            if shaped and differs(row.number(key), mine):
                parts.append(f"gateway used {key} {_n(row.number(key))}, contract {plain(mine)}")
    if differs(row.number("group_ratio"), terms.group_ratio):
        which = "pair ratio" if terms.pair else "ratio"
        parts.append(
            f"gateway used group_ratio {_n(row.number('group_ratio'))}, contract "
            f"{which} {plain(terms.group_ratio)} for group {row.group!r}"
        )
    if parts:
        return "; ".join(parts)
    if not row.other or (row.number("model_ratio") is None and price is None):
        return "the log records no ratios to compare"
    if rule.per_call:
        return "the log's model_price agrees with the contract, yet the charge differs"
    return "the log's ratios agree with the contract, yet the charge differs"


#: The `other` keys a mismatch's cause compares.
CAUSE_KEYS: Final = (
    "model_ratio",
    "completion_ratio",
    "cache_ratio",
    "cache_creation_ratio",
    "group_ratio",
    "model_price",
)


def grouped_causes(
    rows: npt.NDArray[np.intp],
    terms: list[tuple[Terms, str]],
    combo: npt.NDArray[np.int64],
    floats: dict[str, npt.NDArray[np.float64]],
    has_other: npt.NDArray[np.bool_],
    shaped: dict[str, npt.NDArray[np.bool_]],
) -> npt.NDArray[np.object_]:
    """`mismatch_cause` for many logs, computed once per distinct (terms, ratios, shape):
    systematic differences repeat a lot. `shaped`: whether completion / cache / creation > 0."""
    cols: dict[str, Any] = {"combo": combo[rows], "other": has_other[rows]}
    cols |= {k: np.nan_to_num(floats[k][rows], nan=-1e308) for k in CAUSE_KEYS}
    cols |= {k: v[rows] for k, v in shaped.items()}
    key = pd.DataFrame(cols)
    groups = key.groupby(list(key.columns), sort=False).ngroup().to_numpy()
    firsts = pd.Series(np.arange(len(rows))).groupby(groups).first().to_numpy()
    texts = []
    for j in firsts:
        i = int(rows[j])
        other: dict[str, Any] = {}
        if has_other[i]:
            other = {k: float(floats[k][i]) for k in CAUSE_KEYS if not np.isnan(floats[k][i])}
            other["cache_tokens"] = int(shaped["cache"][i])
            other["cache_creation_tokens"] = int(shaped["creation"][i])
            other.setdefault("_parsed", True)
        contract, group = terms[int(combo[i])]
        row = Row(0, 0, int(shaped["completion"][i]), "", group, "", other)
        texts.append(mismatch_cause(row, contract))
    out: npt.NDArray[np.object_] = np.array(texts, dtype=object)[groups]
    return out


def _has(row: Row, key: str) -> bool:
    v = row.other.get(key)
    return isinstance(v, int | float) and not isinstance(v, bool) and v > 0


def _n(d: Decimal | None) -> str:
    return "?" if d is None else plain(d)


def unpriced_reasons(
    models: npt.NDArray[np.object_],
    days: npt.NDArray[np.str_],
    rules: Rules,
) -> npt.NDArray[np.object_]:
    """Why no rule prices each unpriced log, worded once per (model, local day)."""
    groups = pd.DataFrame({"m": models, "d": days}).groupby(["m", "d"], sort=False).ngroup()
    codes = groups.to_numpy()
    texts = []
    for j in pd.Series(np.arange(len(models))).groupby(codes).first().to_numpy():
        model, day = str(models[j]), str(days[j])
        if not model:
            texts.append("the log has no model name")
        elif not day:
            texts.append(f"no rule matches model {model!r}")
        else:
            spans = ", ".join(
                f"{r.describe_dates()} (line {r.line})" for r in rules.candidates(model)
            )
            texts.append(f"no rule for {model!r} is in effect on {day}; its rules cover {spans}")
    out: npt.NDArray[np.object_] = np.array(texts, dtype=object)[codes]
    return out


def rule_columns(
    ids: npt.NDArray[np.int64], idx: npt.NDArray[np.int64], rules: Rules
) -> dict[str, pd.Series]:
    """The columns of the priced table that follow from each log's rule alone (`idx`, -1:
    none): known once the rules are assigned, so they are built while the logs are priced."""
    models = rules.models

    def text(get: Callable[[ModelRule], Decimal | None], tokens_only: bool = False) -> pd.Series:
        vals = [None if tokens_only and r.per_call else get(r) for r in models]
        return strings([None if v is None else plain(v) for v in vals], idx)

    lines = np.array([r.line for r in models] or [0], dtype=np.int64)[np.maximum(idx, 0)]
    return {
        "id": pd.Series(ids, dtype="int64"),
        "rule": strings([r.match for r in models], idx),
        "rule_line": nullable(lines, idx >= 0),
        "model_ratio": text(lambda r: r.model_ratio),
        "completion_ratio": text(lambda r: r.completion_ratio, tokens_only=True),
        "cache_ratio": text(lambda r: r.cache_ratio, tokens_only=True),
        "cache_creation_ratio": text(lambda r: r.cache_creation_ratio, tokens_only=True),
        "model_price": text(lambda r: r.model_price),
    }


def strings(values: list[str] | list[str | None], codes: npt.NDArray[np.int64]) -> pd.Series:
    """codes -> values[code] (code < 0: NA) as a pandas string column, without a Python loop."""
    dictionary = pa.array([*values, None], type=pa.large_string())
    index = np.where(codes < 0, len(values), codes)
    return pd.Series(pd.array(dictionary.take(pa.array(index)), dtype="string"))


def coded(values: npt.NDArray[np.object_]) -> pd.Series:
    """An object array of strings (None: "") as a string column (Arrow copies it in C)."""
    arr = pa.array(values, type=pa.large_string(), from_pandas=True).fill_null("")
    return pd.Series(pd.array(arr, dtype="string"))


def nullable(values: npt.NDArray[np.int64], present: npt.NDArray[np.bool_]) -> pd.Series:
    return pd.Series(pd.arrays.IntegerArray(values.astype(np.int64), ~present))


def local(ts: npt.NDArray[np.int64], tz: ZoneInfo) -> npt.NDArray[np.datetime64]:
    """Wall-clock time in `tz` of unix seconds, as naive datetime64[s]."""
    utc = pd.DatetimeIndex(pd.to_datetime(ts, unit="s", utc=True))
    local: npt.NDArray[np.datetime64] = (
        utc.tz_convert(tz).tz_localize(None).to_numpy().astype("datetime64[s]")
    )
    return local


def iso(ts: npt.NDArray[np.int64], tz: ZoneInfo) -> pd.Series:
    """ISO 8601 with the offset in `tz` (2026-10-01T08:00:00+08:00), vectorised."""
    wall_time = local(ts, tz)
    wall = pa.array(np.datetime_as_string(wall_time, unit="s"), type=pa.large_string())
    uniq, inverse = np.unique(wall_time.astype(np.int64) - ts, return_inverse=True)
    offsets = pa.array([_offset(int(o)) for o in uniq], type=pa.large_string())
    joined = pc.binary_join_element_wise(wall, offsets.take(inverse), _EMPTY)
    return _arrow_strings(joined)


def _offset(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


def _arrow_strings(arr: pa.Array) -> pd.Series:
    return pd.Series(pd.array(arr, dtype="string"))


def _explain(
    kind: int,
    charged: npt.NDArray[np.int64],
    expected: npt.NDArray[np.int64],
    diff: npt.NDArray[np.int64],
    why: npt.NDArray[np.object_],
) -> pa.Array:
    """One-line explanations of findings of one kind (0: amount differs, 1: ratios only,
    2: unpriced, 3: not re-priceable), built with Arrow string kernels."""

    def text(values: npt.NDArray[np.int64]) -> pa.Array:
        return pc.cast(pa.array(values, type=pa.int64()), pa.large_string())

    def join(*parts: str | pa.Array) -> pa.Array:
        items = [p if isinstance(p, pa.Array) else pa.scalar(p, pa.large_string()) for p in parts]
        return pc.binary_join_element_wise(*items, _EMPTY)

    q = text(charged)
    reason = pa.array(why.tolist(), type=pa.large_string()).fill_null("")
    if kind == 0:
        sign = pa.array(np.where(diff > 0, "+", ""), type=pa.large_string())
        return join(
            "charged ",
            q,
            ", the rules give ",
            text(expected),
            " (",
            sign,
            text(diff),
            "): ",
            reason,
        )
    if kind == 1:
        return join("charged ", q, " as the rules give, but ", reason)
    if kind == 2:
        return join(reason, "; charged ", q, " quota unverified")
    return join("cannot re-price: ", reason, "; charged ", q, " quota")


def findings(logs: Logs, out: Outcome, errors: npt.NDArray[np.bool_], tz: ZoneInfo) -> pd.DataFrame:
    """One finding per log that is not ok; explanations built a column at a time.

    `errors`: not re-priceable logs whose own record is broken, raised to severity error.
    Each finding shows its log's billing path (`out.path`; None: none).
    """
    frame, ids, ts, charged_all = logs.frame, logs.ids, logs.ts, logs.quota
    status_all, has_expected = out.status, out.has_expected
    expected_all = np.where(has_expected, out.expected, 0)
    rows = np.flatnonzero(status_all != 0)
    if not len(rows):
        return schema.empty_findings()
    status = status_all[rows].astype(np.int64)
    charged, expected = charged_all[rows], expected_all[rows]
    with np.errstate(over="ignore"):
        diff = charged - expected
    is_mismatch = status == MISMATCH
    at_stake = np.where(
        is_mismatch, _saturated_abs(charged, expected), _saturated_abs(charged, 0 * charged)
    )

    why = out.reasons[rows]
    # four wordings: each built on its own rows, then put back in order
    kind = np.where(is_mismatch, np.where(diff != 0, 0, 1), np.where(status == UNPRICED, 2, 3))
    order = np.argsort(kind, kind="stable")
    parts = []
    for k in range(4):
        sel = order[kind[order] == k]
        parts.append(_explain(k, charged[sel], expected[sel], diff[sel], why[sel]))
    explanation = pa.concat_arrays(parts).take(pa.array(np.argsort(order)))
    categories = [_CATEGORY.get(i, "") for i in range(len(STATUSES))]
    severity = strings([schema.SEVERITY.get(c, "") for c in categories], status)
    raised = errors[rows]
    if raised.any():
        severity = severity.where(~pd.Series(raised), "error")
    text_cols = frame[["request_id", "token_name", "model_name", "group"]].iloc[rows]
    text_cols = text_cols.reset_index(drop=True)
    return schema.findings_frame(
        {
            "category": strings(categories, status),
            "severity": severity,
            "source": "pricing",
            "log_id": ids[rows],
            "request_id": text_cols["request_id"],
            "created_at": iso(ts[rows], tz),
            "type": schema.TYPE_NAMES[schema.CONSUME],
            "token_name": text_cols["token_name"],
            "model_name": text_cols["model_name"],
            "group": text_cols["group"],
            "log_quota": charged,
            "expected_quota": pd.arrays.IntegerArray(expected, ~has_expected[rows]),
            "diff_quota": at_stake,
            "explanation": _arrow_strings(explanation),
        }
        | {"path": _blank_na(coded(out.path[rows]))}
    )


def _blank_na(values: pd.Series) -> pd.Series:
    return values.mask(values == "")


def _saturated_abs(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """|a - b| without wrapping past int64 (a quota of 2**63 - 1 against a negative one)."""
    return abs_diff(a, b)
