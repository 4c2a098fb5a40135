"""The report's view of the logs: exact sums that add up day by day, never the logs themselves.

A month can hold tens of millions of logs; the report shows a few dozen numbers per model, day,
token and billing path. So each day's logs and their pricing are reduced to `LogAggregates`
(`LogAggregates.of`) as soon as they are priced, the day is dropped, and the days' aggregates
are added up (`combine`). Every figure is a count or an integer quota sum, kept as Python ints,
so adding the days gives exactly what the whole month gives, whichever way it is cut.

What the report reads from the logs, and where it now comes from:

- summary.json, the Summary sheet, the headline (report/totals.py): count and quota of each
  log type (`by_type`); the consume logs' charged quota by pricing status (`by_status`), by
  billing path (`by_path`) and, for the not re-priceable ones, by reason code (`by_reason`);
- By model (report/tables.py): consume logs, tokens, charged, re-priced, expected, mismatches
  and unchecked logs by model (`by_model`), the rules each model was priced by (`by_rule`);
- Rules sheet: per rule, logs, charged and expected quota and mismatches (`by_rule`);
- By day: per local day, consume logs, charged, re-priced charge, expected, refunds and
  top-ups (`by_day`);
- By token, and the Summary's list of API keys: per token, consume logs, charged, refunds,
  top-ups, re-priced charge and expected (`by_token`), and which key refs carried which token
  names (`key_tokens`);
- Refunds & topups: those logs themselves, one row each (`refunds_topups`): there are few, and
  the sheet lists every one.

Nothing else in the report reads a log: findings carry their own rows, the books are read
whole, and the fetch's metadata (period, windows, key refs, fetched_at) is kept apart.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import numpy as np
import pandas as pd

from reconcile.core.logstore import day_edges
from reconcile.core.period import Period
from reconcile.core.schema import CONSUME, LOG_DTYPES, REFUND, TOPUP, TYPE_NAMES

#: Re-pricing statuses (the pricing table's `status`); NO_STATUS: a consume log the pricing
#: table has no row for.
OK, MISMATCH, UNPRICED, NOT_REPRICEABLE = "ok", "mismatch", "unpriced", "not_repriceable"
NO_STATUS: Final = ""
#: The billing path of a consume log no rule prices (pricing leaves its path empty).
NO_PATH: Final = "none"
#: A not re-priceable log without a reason code.
NO_REASON: Final = "unspecified"
#: The model or token name of a log that has none.
NO_NAME: Final = "(none)"

#: The log columns `LogAggregates.of` reads (a caller may pass only these: `content` is read
#: for refund and top-up logs only), and the pricing table's.
LOG_COLUMNS_READ: Final = [
    "id",
    "created_at",
    "type",
    "key_ref",
    "token_name",
    "model_name",
    "quota",
    "prompt_tokens",
    "completion_tokens",
    "content",
]
PRICED_COLUMNS_READ: Final = ["id", "rule", "expected_quota", "status", "path", "reason_code"]
#: The columns of a refund or top-up log the Refunds & topups sheet shows.
REFUND_COLUMNS: Final = [
    c for c in LOG_COLUMNS_READ if c not in ("prompt_tokens", "completion_tokens")
]
#: The value columns of each table, in the order of their tuples (a row count comes first).
MODEL_VALUES: Final = (
    "logs",
    "prompt_tokens",
    "completion_tokens",
    "charged",
    "repriced",
    "charged_repriced",
    "expected",
    "mismatch",
    "unchecked",
)
RULE_VALUES: Final = ("logs", "charged_repriced", "expected", "mismatch")
DAY_VALUES: Final = ("logs", "charged", "charged_repriced", "expected", "refund", "topup")
TOKEN_VALUES: Final = ("logs", "charged", "refund", "topup", "charged_repriced", "expected")

K = TypeVar("K", bound=Hashable)
Sums = dict[K, tuple[int, ...]]

_TABLES: Final = (
    "by_type",
    "by_status",
    "by_path",
    "by_reason",
    "by_model",
    "by_rule",
    "by_day",
    "by_token",
)


@dataclass(eq=False)
class LogAggregates:
    """Sums over a set of logs (one day, or days combined); every value a tuple of ints.

    `by_type`, `by_status`, `by_path`, `by_reason`: (count, quota); the other tables' tuples
    follow MODEL_VALUES, RULE_VALUES, DAY_VALUES and TOKEN_VALUES. "Charged" is the quota the
    gateway logged; "charged_repriced" and "expected" cover the consume logs the rules could
    re-price (expected_quota present).
    """

    by_type: Sums[str] = field(default_factory=dict)  # every log, by type name (TYPE_NAMES)
    by_status: Sums[str] = field(default_factory=dict)  # consume logs; NO_STATUS: not priced
    by_path: Sums[str] = field(default_factory=dict)  # consume logs; NO_PATH: none
    by_reason: Sums[str] = field(default_factory=dict)  # not re-priceable logs; NO_REASON
    by_model: Sums[str] = field(default_factory=dict)  # consume logs; NO_NAME: none
    by_rule: Sums[tuple[str, str]] = field(default_factory=dict)  # (model, rule) of consume
    by_day: Sums[str] = field(default_factory=dict)  # every log in the period, by local day
    by_token: Sums[str] = field(default_factory=dict)  # every log, by token; NO_NAME: none
    #: (key ref, token name or None): which token names each API key's logs carry
    key_tokens: set[tuple[str, str | None]] = field(default_factory=set)
    #: the refund and top-up logs (REFUND_COLUMNS, schema dtypes), by created_at, id
    refunds_topups: pd.DataFrame = field(default_factory=lambda: _no_refund_rows())

    @classmethod
    def of(cls, logs: pd.DataFrame, priced: pd.DataFrame, period: Period) -> LogAggregates:
        """The aggregates of `logs` (schema.LOG_DTYPES) as priced in `priced` (the pricing
        table, Pricing.priced: a row per consume log of these logs; other rows are ignored).

        `period` gives the local days; logs outside it count everywhere except by day."""
        detail = _consume_detail(logs, priced)
        kinds = logs["type"].to_numpy()
        quota = logs["quota"].astype("int64")
        everything = pd.DataFrame(
            {
                "type": logs["type"].map(TYPE_NAMES).astype("string"),
                "token": logs["token_name"].astype("string").fillna(NO_NAME),
                "day": _local_day(logs["created_at"], period),
                "quota": quota,
                "logs": (kinds == CONSUME).astype("int64"),
                "charged": quota.where(kinds == CONSUME, 0),
                "refund": quota.where(kinds == REFUND, 0),
                "topup": quota.where(kinds == TOPUP, 0),
            },
            index=logs.index,
        )
        for name in ("charged_repriced", "expected"):
            everything[name] = detail[name].reindex(logs.index, fill_value=0).astype("int64")
        not_repriceable = detail[(detail["status"] == NOT_REPRICEABLE).to_numpy()]
        pairs = logs[["key_ref", "token_name"]].drop_duplicates()
        key_tokens = {
            (str(k), None if pd.isna(t) else str(t))
            for k, t in zip(pairs["key_ref"], pairs["token_name"], strict=True)
            if not pd.isna(k)
        }
        return cls(
            by_type=_sums(everything, ["type"], ["quota"]),
            by_status=_sums(detail, ["status"], ["charged"]),
            by_path=_sums(detail, ["path"], ["charged"]),
            by_reason=_sums(not_repriceable, ["reason"], ["charged"]),
            by_model=_sums(detail, ["model"], list(MODEL_VALUES[1:])),
            by_rule=_sums(detail, ["model", "rule"], list(RULE_VALUES[1:])),
            by_day=_sums(everything, ["day"], list(DAY_VALUES), count=False),
            by_token=_sums(everything, ["token"], list(TOKEN_VALUES), count=False),
            key_tokens=key_tokens,
            refunds_topups=_refund_rows(logs),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogAggregates):
            return NotImplemented
        return (
            all(getattr(self, t) == getattr(other, t) for t in _TABLES)
            and self.key_tokens == other.key_tokens
            and self.refunds_topups.equals(other.refunds_topups)
        )

    __hash__ = None  # type: ignore[assignment]


def combine(parts: Sequence[LogAggregates]) -> LogAggregates:
    """The aggregates of the parts' logs together; the parts must hold disjoint logs (days).

    Sums add exactly (Python ints); refund and top-up rows are merged in time order."""
    out = LogAggregates()
    for name in _TABLES:
        total: Sums[Hashable] = {}
        for part in parts:
            for key, values in getattr(part, name).items():
                was = total.get(key)
                total[key] = (
                    values
                    if was is None
                    else tuple(a + b for a, b in zip(was, values, strict=True))
                )
        setattr(out, name, total)
    out.key_tokens = set().union(*(p.key_tokens for p in parts))
    rows = [p.refunds_topups for p in parts if len(p.refunds_topups)]
    if rows:
        out.refunds_topups = _in_time_order(pd.concat(rows, ignore_index=True))
    return out


def _consume_detail(logs: pd.DataFrame, priced: pd.DataFrame) -> pd.DataFrame:
    """One row per consume log (indexed as in `logs`): its names and pricing verdict as group
    keys, and integer columns to sum."""
    consume = logs.loc[
        logs["type"] == CONSUME,
        ["id", "token_name", "model_name", "quota", "prompt_tokens", "completion_tokens"],
    ]
    j = consume.merge(
        priced[[c for c in PRICED_COLUMNS_READ if c in priced]],
        on="id",
        how="left",
        validate="one_to_one",
    )
    j.index = consume.index
    status = _column(j, "status").fillna(NO_STATUS)
    expected = j["expected_quota"].astype("Int64") if "expected_quota" in j else None
    if expected is None:
        expected = pd.Series(pd.NA, index=j.index, dtype="Int64")
    repriced = expected.notna()
    charged = j["quota"].astype("int64")
    rule = _column(j, "rule")
    return pd.DataFrame(
        {
            "model": j["model_name"].astype("string").fillna(NO_NAME),
            "token": j["token_name"].astype("string").fillna(NO_NAME),
            "rule": rule.where(rule.str.len() > 0),
            "status": status,
            "path": _name(_column(j, "path"), NO_PATH),
            "reason": _name(_column(j, "reason_code"), NO_REASON),
            "prompt_tokens": _ints(j["prompt_tokens"]),
            "completion_tokens": _ints(j["completion_tokens"]),
            "charged": charged,
            "repriced": repriced.astype("int64"),
            "charged_repriced": charged.where(repriced, 0),
            "expected": expected.fillna(0).astype("int64"),
            "mismatch": (status == MISMATCH).astype("int64"),
            "unchecked": status.isin([UNPRICED, NOT_REPRICEABLE]).astype("int64"),
        },
        index=j.index,
    )


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """`frame[name]` as strings, all missing when the frame has no such column."""
    if name in frame:
        return frame[name].astype("string")
    return pd.Series(pd.NA, index=frame.index, dtype="string")


def _name(values: pd.Series, empty: str) -> pd.Series:
    """Names stripped; missing or blank ones become `empty`."""
    stripped = values.str.strip().fillna("")
    return stripped.mask(stripped == "", empty)


def _ints(values: pd.Series) -> pd.Series:
    return values.astype("Int64").fillna(0).astype("int64")


def _local_day(created_at: pd.Series, period: Period) -> pd.Series:
    """Each time's local date in the period (YYYY-MM-DD), NA outside the period."""
    edges = day_edges(period)
    names = np.array(
        [
            pd.Timestamp(int(e), unit="s", tz="UTC").tz_convert(period.tz).date().isoformat()
            for e in edges[:-1]
        ],
        dtype=object,
    )
    seconds = created_at.to_numpy(dtype=np.int64, na_value=int(edges[0]) - 1)
    part = np.clip(np.searchsorted(edges, seconds, side="right") - 1, 0, len(names) - 1)
    inside = (seconds >= edges[0]) & (seconds < edges[-1])
    days = pd.Series(names[part], index=created_at.index, dtype="string")
    return days.where(inside)


def _sums(frame: pd.DataFrame, keys: list[str], values: list[str], count: bool = True) -> Sums[Any]:
    """Per distinct key (a tuple when several; rows with a missing key skipped): the row count
    if `count`, then each value column's exact sum."""
    if not len(frame):
        return {}
    groups = frame.groupby(keys, sort=False, dropna=True)
    columns = [groups.size()] if count else []
    for name in values:
        column = frame[name].to_numpy(dtype=np.int64)
        bound = int(np.abs(column).max()) if len(column) else 0
        if bound * len(column) < 2**63:  # int64 sums cannot wrap
            columns.append(groups[name].sum())
        else:
            columns.append(groups[name].agg(lambda s: sum(int(v) for v in s.tolist())))
    index = columns[0].index
    lists = [index.tolist(), *(c.reindex(index).tolist() for c in columns)]
    return {key: tuple(int(v) for v in vals) for key, *vals in zip(*lists, strict=True)}


def _no_refund_rows() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=LOG_DTYPES[c]) for c in REFUND_COLUMNS})


def _refund_rows(logs: pd.DataFrame) -> pd.DataFrame:
    rows = logs.loc[logs["type"].isin([REFUND, TOPUP]), REFUND_COLUMNS]
    return _in_time_order(rows) if len(rows) else _no_refund_rows()


def _in_time_order(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values(["created_at", "id"], kind="mergesort").reset_index(drop=True)
