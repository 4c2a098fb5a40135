"""The consume logs as columns, what every pricing tier reads of them, and the verdicts.

The stage (`stage`) prices the logs in tiers (`fast`, `tools_fast`, `by_content`,
`audio_fast`, `settle_fast`, `rowwise`), each reading the same aligned arrays: the charged
quota and token counts, the rule and (rule, tier, group) case of each log, the `other`
fields read once, the rules. Passed one by one they made every tier's signature a list of
ten arrays in an order to keep straight; `LogColumns` holds them once, built as soon as the
cases are known, and each tier takes the rows it may price and these columns. `Outcome` is
what the tiers decide, read back by the findings (`explain.findings`). Here, apart from the
stage, so that every tier and `explain` can import them without importing the stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconcile.core import schema
from reconcile.pricing.fast import Combos
from reconcile.pricing.other import OtherFields
from reconcile.pricing.rules import Rules


@dataclass
class Logs:
    """The consume logs as plain numpy columns (and the frame, for text columns)."""

    frame: pd.DataFrame
    ids: npt.NDArray[np.int64]
    ts: npt.NDArray[np.int64]
    quota: npt.NDArray[np.int64]
    prompt: npt.NDArray[np.int64]
    completion: npt.NDArray[np.int64]
    model: pd.Series
    group: pd.Series
    #: A number that int64 cannot hold (a quota of 2**63 or more): not re-priceable.
    huge: npt.NDArray[np.bool_]

    @classmethod
    def read(cls, logs: pd.DataFrame) -> Logs:
        types = _int64(logs["type"])[0]
        frame = logs.loc[types == schema.CONSUME].reset_index(drop=True)
        huge = np.zeros(len(frame), dtype=bool)

        def ints(col: str) -> npt.NDArray[np.int64]:
            values, beyond = _int64(frame[col])
            huge[beyond] = True
            return values

        return cls(
            frame=frame,
            ids=ints("id"),
            ts=ints("created_at"),
            quota=ints("quota"),
            prompt=ints("prompt_tokens"),
            completion=ints("completion_tokens"),
            model=frame["model_name"].astype("string").fillna(""),
            group=frame["group"].astype("string").fillna(""),
            huge=huge,
        )


def _int64(column: pd.Series) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """A column as int64 (missing: 0), and where a value does not fit (then 0)."""
    try:
        values: npt.NDArray[np.int64] = column.to_numpy(dtype=np.int64, na_value=0)
        return values, np.zeros(len(column), dtype=bool)
    except (OverflowError, ValueError, TypeError):
        exact = [0 if v is None or v is pd.NA or v != v else int(v) for v in column.tolist()]
        beyond = np.array([not -(2**63) < v < 2**63 for v in exact], dtype=bool)
        fitted = [0 if b else v for v, b in zip(exact, beyond.tolist(), strict=True)]
        return np.array(fitted, dtype=np.int64), beyond


@dataclass(frozen=True)
class LogColumns:
    """What the pricing tiers read of the consume logs, aligned with them."""

    frame: pd.DataFrame
    quota: npt.NDArray[np.int64]
    prompt: npt.NDArray[np.int64]
    completion: npt.NDArray[np.int64]
    #: The log records tokens (prompt + completion > 0).
    used: npt.NDArray[np.bool_]
    rule_idx: npt.NDArray[np.int64]  # -1: no rule prices the log
    combo: npt.NDArray[np.int64]  # the log's case in `combos` (-1: none)
    combos: Combos
    other: OtherFields
    rules: Rules

    @classmethod
    def of(
        cls,
        logs: Logs,
        rule_idx: npt.NDArray[np.int64],
        combo: npt.NDArray[np.int64],
        combos: Combos,
        other: OtherFields,
    ) -> LogColumns:
        return cls(
            frame=logs.frame,
            quota=logs.quota,
            prompt=logs.prompt,
            completion=logs.completion,
            used=logs.prompt + logs.completion > 0,
            rule_idx=rule_idx,
            combo=combo,
            combos=combos,
            other=other,
            rules=combos.rules,
        )


@dataclass
class Outcome:
    """Per-log results, aligned with the consume logs."""

    rule_idx: npt.NDArray[np.int64]
    combo: npt.NDArray[np.int64]
    status: npt.NDArray[np.int8]
    expected: npt.NDArray[np.int64]
    has_expected: npt.NDArray[np.bool_]
    reasons: npt.NDArray[np.object_]
    codes: npt.NDArray[np.object_]
    path: npt.NDArray[np.object_]
    lifted: npt.NDArray[np.bool_]
