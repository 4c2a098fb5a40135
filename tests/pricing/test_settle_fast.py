"""Task settlements judged in columns give the row tier's verdicts, reasons and paths, and
leave to it every settlement they cannot decide exactly."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pricing_helpers import SHANGHAI, frame, log, other, rules

from reconcile.pricing.columns import LogColumns, Logs
from reconcile.pricing.fast import Combos
from reconcile.pricing.other import parse_other
from reconcile.pricing.rowwise import RowInputs, price_rows
from reconcile.pricing.settle_fast import price_settlements
from reconcile.pricing.stage import price_logs
from reconcile.pricing.verdicts import STATUSES

RULES = """
[tolerance]
quota = 0
[group_pairs.svip]
default = 0.9
[[model]]
match = "sora-2"
model_price = 0.1
"""


def settle(quota: int, **amounts: Any) -> dict[str, Any]:
    return log(model_name="sora-2", quota=quota, other=other(task_id="t1", **amounts))


def raw(quota: int, text: str) -> dict[str, Any]:
    return log(model_name="sora-2", quota=quota, other=text)


#: Settlements of whole amounts: the column tier reads them all (name -> log, settled there).
WHOLE: dict[str, tuple[dict[str, Any], bool]] = {
    "consistent": (settle(-600, pre_consumed_quota=1000, actual_quota=400, quota_delta=-600), True),
    "no delta": (settle(-600, pre_consumed_quota=1000, actual_quota=400), True),
    "refund larger than the charge": (settle(-7, pre_consumed_quota=9, actual_quota=2), True),
    "delta only": (settle(-300, quota_delta=-300), True),
    "missing pre": (settle(-600, actual_quota=400, quota_delta=-600), True),
    "old pre key": (settle(-600, pre_consumed=1000, actual_quota=400), True),
    "null pre, old key": (
        settle(-600, pre_consumed_quota=None, pre_consumed=1000, actual_quota=400),
        True,
    ),
    "both pre keys": (
        settle(-600, pre_consumed_quota=1000, pre_consumed=5, actual_quota=400),
        True,
    ),
    "delta disagrees": (
        settle(-600, pre_consumed_quota=1000, actual_quota=400, quota_delta=-500),
        False,
    ),
    "quota disagrees": (settle(-500, pre_consumed_quota=1000, actual_quota=400), False),
    "quota disagrees with the delta": (settle(-500, quota_delta=-600), False),
    "incomplete": (settle(400, actual_quota=400), False),
    "all null": (settle(0, quota_delta=None, actual_quota=None), False),
    "beyond 2**62": (settle(2**62, actual_quota=2**62 + 5, pre_consumed_quota=5), False),
    "difference beyond int64": (settle(0, actual_quota=2**63 - 1, pre_consumed_quota=-1), False),
    "pair ratio, disagreeing": (
        log(
            model_name="sora-2",
            quota=-500,
            other=other(user_group_ratio=0.9, pre_consumed_quota=1000, actual_quota=400),
        ),
        False,
    ),
    "nested key": (raw(0, json.dumps({"x": {"quota_delta": 5}})), False),
    "not json": (raw(0, '{"quota_delta": -600'), False),
}

#: Values the column reader refuses: the row tier decides their whole chunk.
REFUSED: dict[str, dict[str, Any]] = {
    "float amounts": settle(-600, pre_consumed_quota=1000.0, actual_quota=400.0),
    "float with a fraction": settle(-600, pre_consumed_quota=1000.5, actual_quota=400.5),
    "string amount": settle(-600, quota_delta="-600"),
    "string beside numbers": settle(
        -600, quota_delta="-600", actual_quota=400, pre_consumed_quota=1000
    ),
    "boolean": settle(1, quota_delta=True),
    "beyond int64": settle(0, actual_quota=2**64, pre_consumed_quota=2**64),
    "exponent": raw(1000, '{"quota_delta": 1e3}'),
    "a key twice": raw(-600, '{"quota_delta": -500, "quota_delta": -600}'),
}


def reference(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str, Any]]:
    """Each log priced on its own by the row tier (every log here has the one rule)."""
    r = rules(RULES)
    out = []
    for row in rows:
        inputs = RowInputs([row["quota"]], [0], [0], ["sora-2"], [row["group"]], [""],
                           [row["other"]], [0])  # fmt: skip
        v = price_rows(inputs, r)[0]
        expected = None if v.expected is None or v.status == 3 else v.expected
        out.append((STATUSES[v.status], v.path, v.reason, v.code, expected))
    return out


def columns(logs: pd.DataFrame) -> LogColumns:
    """The consume logs' columns, as the stage passes them (no rule cases: settlements need
    none)."""
    consume = Logs.read(logs)
    none = np.full(len(consume.ids), -1, dtype=np.int64)
    return LogColumns.of(
        consume, none, none, Combos(rules(RULES)), parse_other(consume.frame["other"])
    )


def staged(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str, Any]]:
    p = price_logs(frame(rows), rules(RULES), SHANGHAI).priced
    cols = [p[c].tolist() for c in ("status", "path", "reason", "reason_code", "expected_quota")]
    return [
        (s, a, r, c, None if pd.isna(e) else int(e)) for s, a, r, c, e in zip(*cols, strict=True)
    ]


def test_whole_amounts_are_settled_in_columns_exactly_where_consistent() -> None:
    rows = [r for r, _ in WHOLE.values()]
    got, words = price_settlements(np.arange(len(rows)), columns(frame(rows)))
    assert [list(WHOLE)[i] for i in got] == [k for k, (_, s) in WHOLE.items() if s]
    want = reference([rows[i] for i in got])
    assert words == [w[2] for w in want]
    assert all(w[:2] == ("not_repriceable", "task_settle") for w in want)


def test_the_stage_gives_the_row_tiers_verdicts_on_whole_amounts() -> None:
    rows = [r for r, _ in WHOLE.values()]
    assert staged(rows) == reference(rows)


@pytest.mark.parametrize("name", list(REFUSED))
def test_amounts_the_reader_refuses_are_left_to_the_row_tier(name: str) -> None:
    odd = REFUSED[name]
    rows = [WHOLE["consistent"][0], odd, WHOLE["delta only"][0]]
    got, _ = price_settlements(np.arange(3), columns(frame(rows)))
    assert not len(got)
    assert staged(rows) == reference(rows)
