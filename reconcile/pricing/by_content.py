"""Images and task submissions, priced once per distinct case instead of once per log.

An image log's charge (`paths.call.price_image`) depends on its rule, its group's terms, its
`content` (size, quality, n) and the model_price it logged; a task submission's
(`paths.task.price_submission`) on its rule, terms and `content` (seconds and the other
multipliers). Nothing else of the log enters the contract's charge. So the logs that surely
take one of these two paths are grouped by exactly those inputs, each group is priced by the
very same path function (`assign.price`, on the group's first log), and every log of the
group is judged against that charge in int64. A log whose charge agrees is ok; any other
(a mismatch to explain, a charge the rules cannot price, a quota beyond int64) goes on to
the row tier (`rowwise`), as does every log these tests cannot place on the path for sure.

Surely on the path: `other` was read (not broken) and holds none of the rarer keys that
would send the log down another path first (settlement amounts; for images any key the
text tier leaves to the others, `fast.OFF_PATH`), and `content` shows the path's marker.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, localcontext
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconcile.core.money import round_half_away
from reconcile.core.tolerance import within
from reconcile.pricing.assign import price, terms_for
from reconcile.pricing.columns import LogColumns
from reconcile.pricing.fast import OFF_PATH
from reconcile.pricing.other import UNREADABLE, key_pattern, mentions
from reconcile.pricing.paths import call, registry, task
from reconcile.pricing.paths.base import Charge, Row
from reconcile.pricing.rowwise import read_other
from reconcile.pricing.rules_paths import INT64_MAX

#: `other` keys of the paths tried before a submission (a task settlement).
SETTLE_OTHER: Final = key_pattern(k for p in registry.ahead_of(task.SUBMIT) for k in p.marks)


def candidates(
    rows: npt.NDArray[np.intp],
    cols: LogColumns,
    per_call: npt.NDArray[np.bool_],
    tier: npt.NDArray[np.int64],
) -> npt.NDArray[np.intp]:
    """Among `rows`: the image and task-submission logs this module may price."""
    frame = cols.frame
    rows = rows[(cols.other.state[rows] != UNREADABLE) & (tier[rows] == 0)]
    tasks = mentions(frame["content"], rows, task.PARAMS_AT)
    tasks = np.setdiff1d(tasks, mentions(frame["other"], tasks, SETTLE_OTHER))
    image = mentions(frame["content"], rows[per_call[rows]], call.IMAGE_MARKER)
    image = np.setdiff1d(image, tasks)
    image = np.setdiff1d(image, mentions(frame["other"], image, OFF_PATH))
    return np.union1d(tasks, image).astype(np.intp)


def price_by_content(
    rows: npt.NDArray[np.intp], cols: LogColumns
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64], list[str]]:
    """(the rows of `rows` whose charge agrees, their expected quota, their paths)."""
    done: list[npt.NDArray[np.intp]] = []
    expected: list[npt.NDArray[np.int64]] = []
    labels: list[str] = []
    if not len(rows):
        return rows, np.zeros(0, dtype=np.int64), labels
    floats = cols.other.floats
    keys = pd.DataFrame(
        {
            "c": cols.combo[rows],
            "content": cols.frame["content"].iloc[rows].to_numpy(dtype=object),
            "price": floats["model_price"][rows],
            "used": floats["user_group_ratio"][rows],
        }
    )
    groups = keys.groupby(["c", "content", "price", "used"], sort=False, dropna=False).indices
    with localcontext() as ctx:
        ctx.prec = 80  # as the row tier: every product of these magnitudes is exact
        for members in groups.values():
            at = rows[members]
            charge = _charge(int(at[0]), cols)
            if charge is None:
                continue
            want = round_half_away(charge.exact)
            low = int(charge.exact.to_integral_value(rounding=ROUND_FLOOR))
            if charge.floor_one or abs(want) > INT64_MAX or abs(low) > INT64_MAX:
                continue  # rare: the row tier decides
            q, tolerance = cols.quota[at], cols.rules.tolerance
            agree = within(q, np.full(len(at), want, dtype=np.int64), tolerance)
            if charge.truncates:
                agree |= within(q, np.full(len(at), low, dtype=np.int64), tolerance)
            ok = at[agree]
            done.append(ok)
            expected.append(np.full(len(ok), want, dtype=np.int64))
            labels.extend([charge.path] * len(ok))
    if not done:
        return rows[:0], np.zeros(0, dtype=np.int64), labels
    return np.concatenate(done), np.concatenate(expected), labels


def _charge(i: int, cols: LogColumns) -> Charge | None:
    """The charge of log `i` along its path, as the row tier computes it (None: not a charge)."""
    obj, problem = read_other(_text(cols.frame["other"].iloc[i]))
    if problem:
        return None
    log = cols.frame.iloc[i]
    row = Row(
        quota=int(cols.quota[i]),
        prompt=0,
        completion=0,
        model=str(log["model_name"]),
        group=_text(log["group"]) or "",
        content=_text(log["content"]) or "",
        other=obj,
    )
    rule = cols.rules.models[int(cols.rule_idx[i])]
    priced = price(row, terms_for(row, rule, cols.rules))
    return priced if isinstance(priced, Charge) else None


def _text(v: object) -> str | None:
    return None if v is None or v is pd.NA or v != v else str(v)
