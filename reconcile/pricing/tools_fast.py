"""Tool-call surcharges of text logs, in int64 columns beside the vectorised text formula.

`assign._price` prices a text log with tool calls as `paths.text.price_text` plus
`paths.tools.extras`, added before rounding. A call of a tool costs `tools.call_quota`; in the
text tier's scaled integers (`quota.Combo`: the quota is a sum over den = 10**(D + e)) it is
`call_quota x den`, an integer for the prices contracts use. So the surcharge of a log is
sum(calls x call_quota x den), added to the scaled text sum before `quota.round_div`, and the
text tier settles such a log like any other.

Read here, for the logs whose `other` shows tool calls and nothing else the text tier does
not price: the calls, with pyarrow's JSON reader, as `tools.calls` reads them (the newer
`tool_surcharges` list, else the older flags and counts). A log this cannot read exactly (a
value of another type, a tool the rules do not price, a constant that is not whole or too
large) is left to the row tier, which prices it and says why.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reconcile.pricing.columns import LogColumns
from reconcile.pricing.other import read_table
from reconcile.pricing.paths import tools
from reconcile.pricing.paths.base import Terms
from reconcile.pricing.quota import INT64_HEADROOM, Combo

_CALL: Final = pa.struct([("name", pa.string()), ("count", pa.int64())])
SCHEMA: Final = pa.schema(
    [(tools.LIST_KEY, pa.list_(_CALL))]
    + [f for flag, count, _ in tools.FLAGS for f in ((flag, pa.bool_()), (count, pa.float64()))]
)


def surcharge_columns(
    rows: npt.NDArray[np.intp], cols: LogColumns
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """(the rows of `rows` whose surcharges are read exactly, every log's surcharge scaled by
    its combo's den (0 elsewhere), whether each taken row has any). `rows`: token-priced text
    logs with tool calls; those without tokens (a surcharge alone) are the row tier's."""
    extra = np.zeros(len(cols.combo), dtype=np.int64)
    taken, scaled, named = _surcharges(rows[cols.used[rows]], cols)
    extra[taken] = scaled
    return taken, extra, named


def _surcharges(
    rows: npt.NDArray[np.intp], cols: LogColumns
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    none = (rows[:0], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool))
    combo, items, paired = cols.combo, cols.combos.items, cols.combos.paired
    quota_per_unit = cols.rules.quota_per_unit
    rows = rows[combo[rows] >= 0]
    table, read = read_table(cols.frame["other"], rows, SCHEMA)
    if table is None or not len(read):
        return none
    rows = rows[read]
    good = np.ones(len(rows), dtype=bool)
    # (row position, tool name, calls) of every call listed, as tools.calls reads them
    listed = table.column(tools.LIST_KEY).combine_chunks()
    has_list = listed.is_valid().to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(listed)
    at = pc.list_parent_indices(listed).to_numpy(zero_copy_only=False)
    names = flat.field("name")
    counts = flat.field("count")
    bad = pc.or_(names.is_null(), counts.is_null()).to_numpy(zero_copy_only=False)
    calls = counts.fill_null(0).to_numpy(zero_copy_only=False)
    good[at[bad | (calls < 0)]] = False
    parts = [(at, np.asarray(names.to_numpy(zero_copy_only=False), dtype=object), calls)]
    for flag, count_key, name in tools.FLAGS:
        n = table.column(count_key).to_numpy(zero_copy_only=False).astype(np.float64)
        seen = ~np.isnan(n)
        whole = np.where(seen, n, 0)
        good &= ~seen | ((whole >= 0) & (whole < 2.0**53) & (whole == np.floor(whole)))
        on = table.column(flag).fill_null(False).to_numpy(zero_copy_only=False)
        use = ~has_list & ((whole > 0) | on)
        pick = np.flatnonzero(use)
        count = np.where(whole[pick] > 0, whole[pick], 1).astype(np.int64)
        parts.append((pick, np.full(len(pick), name, dtype=object), count))
    at = np.concatenate([p[0] for p in parts]).astype(np.intp)
    tool = np.concatenate([p[1] for p in parts])
    calls = np.concatenate([p[2] for p in parts])
    charged = calls > 0
    at, tool, calls = at[charged], tool[charged], calls[charged]
    extra = np.zeros(len(rows), dtype=np.int64)
    estimate = np.zeros(len(rows))
    if len(at):
        cases = pd.DataFrame({"c": combo[rows[at]], "t": tool})
        key = cases.groupby(["c", "t"], sort=False).ngroup().to_numpy()
        firsts = cases.drop_duplicates(["c", "t"]).itertuples(index=False)
        per = np.array(
            [_scaled(items[int(c)], str(t), int(c) in paired, quota_per_unit) for c, t in firsts],
            dtype=np.int64,
        )
        scaled = per[key]
        good[at[scaled < 0]] = False
        amount = np.where(scaled < 0, 0, scaled)
        np.add.at(estimate, at, amount.astype(np.float64) * calls.astype(np.float64))
        good &= estimate < INT64_HEADROOM
        np.add.at(extra, at, np.where(good[at], amount * calls, 0))
    named = np.zeros(len(rows), dtype=bool)
    named[at] = True
    return rows[good], extra[good], named[good]


def _scaled(item: Combo, tool: str, pair: bool, quota_per_unit: Decimal) -> int:
    """`tools.call_quota` x den for one call of `tool` under `item`; -1 when that is not a
    whole number below 2**62 or the rules do not price the tool (the row tier says so)."""
    price = item.rule.tool_prices.get(tool)
    if price is None or not item.fits_int64 or item.rule.per_call:
        return -1
    with localcontext() as ctx:
        ctx.prec = 80
        terms = Terms(item.rule, item.group_ratio, quota_per_unit, pair)
        value = tools.call_quota(price, terms) * item.den
    if value != value.to_integral_value() or not 0 <= value < 2**62:
        return -1
    return int(value)
