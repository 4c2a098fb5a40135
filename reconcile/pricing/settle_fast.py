"""Task settlements in columns: the consistent ones judged in int64 instead of one by one.

A settlement's verdict (`paths.task.price_settlement`) needs only the integers in its
`other`: actual_quota, pre_consumed_quota (else pre_consumed) and quota_delta. Row by row that
is a json.loads and a few Decimals per log, a third of a second for 5,000 settlements. Here
their amounts are read in one pyarrow pass (`other.read_table`), and a settlement whose
quota equals actual - pre-charged (else its delta), with a delta that agrees, is not
re-priceable with the very reason the row tier words (`task.settlement_reason`).

The reader is stricter than json.loads, never looser: a float, a string, a number beyond
int64 or a key written twice makes it refuse the chunk, whose logs stay with the row tier.
So does every log this module does not settle as consistent: an incomplete or inconsistent
settlement (a finding, explained and labelled by the row tier), an amount of 2**62 or more
(actual - pre could overflow int64), or an `other` the regex matched without the keys.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from reconcile.pricing import paths
from reconcile.pricing.columns import LogColumns
from reconcile.pricing.other import PARSED, key_pattern, mentions, read_table
from reconcile.pricing.paths import task

#: `other` that names a settlement's amounts (over-matching costs only a read).
_SETTLE_OTHER: Final = key_pattern(task.SETTLE.marks)
_SCHEMA: Final = pa.schema([(k, pa.int64()) for k in task.SETTLE_KEYS])
#: Amounts below this in magnitude: their difference fits int64 with room.
_LIMIT: Final = 2**62
#: The path and reason code of the logs `price_settlements` returns, as the row tier's.
TASK: Final = paths.TASK_SETTLE
SETTLED: Final = task.SETTLEMENT.code


def price_settlements(
    rows: npt.NDArray[np.intp], cols: LogColumns
) -> tuple[npt.NDArray[np.intp], list[str]]:
    """(the logs among `rows` that are consistent task settlements, the reason of each).

    `rows` are logs left to the row tier (each with a rule); the logs returned are not
    re-priceable, path TASK, code SETTLED."""
    other_text = cols.frame["other"]
    rows = rows[cols.other.state[rows] == PARSED]
    rows = mentions(other_text, rows, _SETTLE_OTHER)
    table, read = read_table(other_text, rows, _SCHEMA)
    if table is None:
        return rows[:0], []
    at = rows[read]
    has = {k: table.column(k).is_valid().to_numpy(zero_copy_only=False) for k in _SCHEMA.names}
    val = {k: table.column(k).fill_null(0).to_numpy(zero_copy_only=False) for k in _SCHEMA.names}
    small = np.ones(len(at), dtype=bool)
    for v in val.values():
        small &= (v < _LIMIT) & (v > -_LIMIT)
    val = {k: np.where(small, v, 0) for k, v in val.items()}  # large: left, and no overflow
    has_pre = has["pre_consumed_quota"] | has["pre_consumed"]
    pre = np.where(has["pre_consumed_quota"], val["pre_consumed_quota"], val["pre_consumed"])
    pair = has["actual_quota"] & has_pre
    delta = val["quota_delta"]
    expected = np.where(pair, val["actual_quota"] - pre, delta)
    consistent = small & (pair | has["quota_delta"]) & (cols.quota[at] == expected)
    consistent &= ~has["quota_delta"] | (delta == expected)
    keep = np.flatnonzero(consistent)
    actual = val["actual_quota"][keep].tolist()
    words = [
        task.settlement_reason(a if ha else None, p if hp else None, e)
        for a, ha, p, hp, e in zip(
            actual,
            has["actual_quota"][keep].tolist(),
            pre[keep].tolist(),
            has_pre[keep].tolist(),
            expected[keep].tolist(),
            strict=True,
        )
    ]
    return at[keep], words
