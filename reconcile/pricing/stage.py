"""The pricing stage: re-price every consume log under the rules, by its billing path.

For each consume log: the rule that prices it (the best pattern in effect at its time,
`assign`), the path new-api billed it along (`assign`, `paths.*`), the contract's quota, and
the verdict (`verdicts`): ok, mismatch (with its cause, `explain`), unpriced (no rule), or
not re-priceable (with the reason and a short code, counted in the report).

Tiers keep a million logs fast, each taking only logs it prices exactly as `rowwise` would:
text, per-call and tool-surcharged logs in int64 columns (`fast`, `tools_fast`), images and
task submissions once per distinct case (`by_content`), audio and settlements in columns
(`audio_fast`, `settle_fast`); the rest, and every finding they cannot explain, in `rowwise`.

Severity: a not re-priceable log is a warning (a month whose logs cannot be checked does
not pass silently), and an error when the gateway's own record of the charge is broken
(`other` unreadable, a count that is not a count): then nothing about it can be trusted.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconcile.core.money import exact_sum
from reconcile.core.results import Pricing
from reconcile.pricing import explain, paths
from reconcile.pricing.assign import assign_rules
from reconcile.pricing.audio_fast import price_audio_columns
from reconcile.pricing.by_content import candidates, price_by_content
from reconcile.pricing.columns import LogColumns, Logs, Outcome
from reconcile.pricing.fast import (
    Combos,
    FastResult,
    fast_rows,
    off_path_marks,
    price_fast,
    tiers_of,
    tokens_of,
)
from reconcile.pricing.other import PARSED, UNREADABLE, OtherFields, parse_other, read_floats
from reconcile.pricing.paths.base import Terms
from reconcile.pricing.paths.text import ANTHROPIC_GUESS, USAGE_SEMANTICS_UNKNOWN
from reconcile.pricing.quota import TokenColumns, price_one
from reconcile.pricing.rowwise import inputs_of, price_rows
from reconcile.pricing.rules import Rules, plain
from reconcile.pricing.settle_fast import SETTLED, TASK, price_settlements
from reconcile.pricing.tools_fast import surcharge_columns
from reconcile.pricing.verdicts import (
    BROKEN_RECORD,
    MISMATCH,
    NOT_REPRICEABLE,
    OK,
    OVERFLOW,
    STATUSES,
    UNPRICED,
)

__all__ = ["PRICED_DTYPES", "STATUSES", "price_logs", "price_one"]

#: Columns of Pricing.priced, in order.
PRICED_DTYPES: Final[dict[str, str]] = {
    "id": "int64",
    "rule": "string",  # the rule's match pattern
    "rule_line": "Int64",  # its [[model]] line in the rules file
    "model_ratio": "string",
    "completion_ratio": "string",
    "cache_ratio": "string",
    "cache_creation_ratio": "string",
    "group_ratio": "string",
    "model_price": "string",
    "cache_tokens": "Int64",  # as read from `other`
    "cache_creation_tokens": "Int64",
    "expected_quota": "Int64",
    "diff_quota": "Int64",  # charged - expected
    "status": "string",
    "reason": "string",
    "path": "string",  # the billing path (reconcile.pricing.paths), "" when unpriced
    "reason_code": "string",  # not re-priceable: why, in a word
}

#: A log of at least this many tokens that prices below 1 quota is worth a warning.
SMALL_PRICE_TOKENS: Final = 1000
_NO_USAGE: Final = "no tokens reported: the gateway charges nothing"


def price_logs(logs: pd.DataFrame, rules: Rules, tz: ZoneInfo) -> Pricing:
    """Re-price every consume log (type 2) of `logs` (schema.LOG_DTYPES) under `rules`."""
    L = Logs.read(logs)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # the JSON reader releases the GIL: what needs only the logs' columns runs meanwhile
        reading = pool.submit(parse_other, L.frame["other"], bool(rules.group_pairs))
        rule_idx, has_candidates = assign_rules(L.model, L.ts, rules, tz)
        marks = off_path_marks(L.frame)
        other = reading.result()
        # the other core, idle while pricing, builds the rule's columns, then the findings
        by_rule = pool.submit(explain.rule_columns, L.ids, rule_idx, rules)
        out, combos, tokens = _price(L, rules, tz, rule_idx, has_candidates, marks, other)
        unsure = np.flatnonzero(out.status == NOT_REPRICEABLE)
        broken = np.zeros(len(L.ids), dtype=bool)
        broken[unsure] = np.isin(out.codes[unsure], list(BROKEN_RECORD))
        finding = pool.submit(explain.findings, L, out, broken, tz)
        priced = _priced_frame(L, out, combos, tokens, other.floats, by_rule.result())
        reasons = Counter(out.codes[unsure].tolist())
        return Pricing(
            priced=priced,
            findings=finding.result(),
            expected_quota=exact_sum(out.expected[out.has_expected]),
            warnings=_warnings(L, out, int((other.state == UNREADABLE).sum()), rules, reasons),
            not_repriceable_reasons={str(k): int(v) for k, v in sorted(reasons.items())},
        )


def _price(
    L: Logs,
    rules: Rules,
    tz: ZoneInfo,
    rule_idx: npt.NDArray[np.int64],
    has_candidates: npt.NDArray[np.bool_],
    marks: tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]],
    other: OtherFields,
) -> tuple[Outcome, Combos, TokenColumns]:
    """Every log's verdict, tier by tier (the module doc), from the columns read."""
    n = len(L.ids)
    tokens, bad_tokens = tokens_of(L.prompt, L.completion, other)
    combos = Combos(rules)
    pair = combos.pair_index(L.group, other.floats["user_group_ratio"], rule_idx >= 0)
    tier = tiers_of(rules, rule_idx, tokens)
    combo = combos.codes(rule_idx, L.group, pair, tier)
    cols = LogColumns.of(L, rule_idx, combo, combos, other)
    # charged without tokens, or negative counts: the row-wise paths say why
    odd = ((L.prompt + L.completion == 0) & (L.quota != 0)) | (L.prompt < 0) | (L.completion < 0)
    odd |= L.huge
    routes = fast_rows(cols, bad_tokens, odd, marks)
    tooled, extra, named = surcharge_columns(routes.tools, cols)
    routes.fast[tooled] = True
    done = price_fast(cols, tokens, routes.fast, extra)
    per_call = np.zeros(n, dtype=bool)
    if combos.items:
        per_call = np.array([c.rule.per_call for c in combos.items])[np.maximum(combo, 0)]
    # a finding of a tiered or surcharged log is explained row by row, along its path
    closer = np.concatenate([routes.tiered, tooled])
    done.decided[closer[done.status[closer] != OK]] = False

    priced = rule_idx >= 0
    decided = done.decided
    out = Outcome(
        rule_idx=rule_idx,
        combo=combo,
        status=np.where(priced, OK, UNPRICED).astype(np.int8),
        expected=done.expected,
        has_expected=decided & (done.status != NOT_REPRICEABLE),
        reasons=np.full(n, None, dtype=object),
        codes=np.full(n, None, dtype=object),
        path=np.full(n, None, dtype=object),
        lifted=done.lifted & decided & (done.status == OK),
    )
    out.status[decided] = done.status[decided]
    _explain_fast(out, done, cols, per_call)
    out.path[decided & (tier > 0)] = paths.TIERED
    surcharged = tooled[named & decided[tooled]]
    out.path[surcharged] = [f"{p}+{paths.TOOLS}" for p in out.path[surcharged]]
    paired = np.flatnonzero(decided & (pair >= 0))
    out.path[paired] = [f"{p}+{paths.GROUP_PAIR}" for p in out.path[paired]]
    rest = np.flatnonzero(priced & ~decided & ~L.huge)
    grouped = candidates(rest, cols, per_call, tier)
    read_floats(L.frame["other"], grouped, other)  # their logged model_price groups them
    ok, want, labels = price_by_content(grouped, cols)
    out.expected[ok], out.has_expected[ok], out.path[ok] = want, True, labels
    rest = np.setdiff1d(rest, ok).astype(np.intp)
    readable = rest[other.state[rest] != UNREADABLE]
    ok, want, labels = price_audio_columns(readable, cols)
    out.expected[ok], out.has_expected[ok], out.path[ok] = want, True, labels
    rest = np.setdiff1d(rest, ok).astype(np.intp)
    settled, words = price_settlements(rest, cols)
    out.status[settled], out.path[settled], out.codes[settled] = NOT_REPRICEABLE, TASK, SETTLED
    out.reasons[settled] = words
    _price_rest(L, np.setdiff1d(rest, settled).astype(np.intp), out, cols)
    huge = np.flatnonzero(L.huge)
    out.status[huge], out.has_expected[huge], out.codes[huge] = NOT_REPRICEABLE, False, OVERFLOW
    out.reasons[huge] = "the log's quota or token counts are beyond the 64-bit range"
    unpriced = np.flatnonzero(~priced)
    if len(unpriced):
        days = np.where(
            has_candidates[unpriced],
            explain.local(L.ts[unpriced], tz).astype("datetime64[D]").astype(str),
            "",
        )
        models = L.model.iloc[unpriced].to_numpy(dtype=object)
        out.reasons[unpriced] = explain.unpriced_reasons(models, days, rules)

    return out, combos, tokens


def _explain_fast(
    out: Outcome, done: FastResult, cols: LogColumns, per_call: npt.NDArray[np.bool_]
) -> None:
    """Paths, and the reasons of the fast path's findings (worded once per distinct case)."""
    d = done.decided
    labels = np.array([paths.TEXT, paths.CACHE, paths.PER_CALL], dtype=object)
    out.path[d] = labels[np.where(per_call[d], 2, done.cached[d].astype(np.int64))]
    out.reasons[d & (done.status == OK) & (cols.prompt + cols.completion == 0)] = _NO_USAGE
    unsure = np.flatnonzero(d & (done.status == NOT_REPRICEABLE))
    out.codes[unsure] = USAGE_SEMANTICS_UNKNOWN.code
    for i in unsure:
        out.reasons[i] = ANTHROPIC_GUESS.format(cache=int(done.tokens.cache[i]))
    wrong = np.flatnonzero(d & (done.status == MISMATCH))
    if len(wrong):
        other, combos = cols.other, cols.combos
        read_floats(cols.frame["other"], wrong, other)
        qpu = cols.rules.quota_per_unit
        terms = [
            (Terms(c.rule, c.group_ratio, qpu, i in combos.paired), c.group)
            for i, c in enumerate(combos.items)
        ]
        t = done.tokens
        shaped = {"completion": t.completion > 0, "cache": t.cache > 0, "creation": t.creation > 0}
        out.reasons[wrong] = explain.grouped_causes(
            wrong, terms, out.combo, other.floats, other.state == PARSED, shaped
        )


def _price_rest(L: Logs, rows: npt.NDArray[np.intp], out: Outcome, cols: LogColumns) -> None:
    """Price `rows` one by one along their paths and record their verdicts."""
    if not len(rows):
        return
    frame = L.frame.iloc[rows]

    def texts(col: str, source: pd.Series | None = None) -> list[Any]:
        series = source if source is not None else frame[col]
        return [None if pd.isna(v) else str(v) for v in series.tolist()]

    columns = {
        "model": L.model.iloc[rows].tolist(),
        "group": L.group.iloc[rows].tolist(),
        "content": [v or "" for v in texts("content")],
        "other": texts("other"),
    }
    verdicts = price_rows(inputs_of(rows, cols, columns), cols.rules)
    for i, v in zip(rows.tolist(), verdicts, strict=True):
        out.status[i] = v.status
        out.path[i] = v.path
        out.reasons[i] = v.reason or None
        out.codes[i] = v.code or None
        if v.expected is not None and v.status != NOT_REPRICEABLE:
            out.expected[i] = v.expected
            out.has_expected[i] = True


def _priced_frame(
    L: Logs,
    out: Outcome,
    combos: Combos,
    tokens: TokenColumns,
    floats: dict[str, npt.NDArray[np.float64]],
    by_rule: dict[str, pd.Series],
) -> pd.DataFrame:
    """Pricing.priced: `by_rule` (explain.rule_columns) and each log's outcome."""
    has = out.has_expected
    with np.errstate(over="ignore"):
        diff = np.where(has, L.quota - out.expected, 0)
    columns = by_rule | {
        "group_ratio": explain.strings([plain(c.group_ratio) for c in combos.items], out.combo),
        "cache_tokens": explain.nullable(tokens.cache, ~np.isnan(floats["cache_tokens"])),
        "cache_creation_tokens": explain.nullable(
            tokens.creation, ~np.isnan(floats["cache_creation_tokens"])
        ),
        "expected_quota": explain.nullable(out.expected, has),
        "diff_quota": explain.nullable(diff, has),
        "status": explain.strings(list(STATUSES), out.status.astype(np.int64)),
        "reason": explain.coded(out.reasons),
        "path": explain.coded(out.path),
        "reason_code": explain.coded(out.codes),
    }
    # the columns are new arrays: no copy; in the table's order
    return pd.DataFrame({k: columns[k] for k in PRICED_DTYPES}, copy=False)


def _warnings(L: Logs, out: Outcome, broken: int, rules: Rules, reasons: Counter[Any]) -> list[str]:
    warnings: list[str] = []
    hidden = out.lifted & (L.prompt + L.completion >= SMALL_PRICE_TOKENS)
    if hidden.any():
        counts = np.bincount(out.rule_idx[hidden], minlength=len(rules.models))
        for r in np.flatnonzero(counts):
            rule = rules.models[int(r)]
            warnings.append(
                f"rule {rule.match!r} (line {rule.line}): {int(counts[r])} log(s) of "
                f"{SMALL_PRICE_TOKENS:,} tokens or more price below 1 quota and are charged the "
                "gateway's minimum of 1, which hides their usage; is model_ratio "
                f"{plain(rule.model_ratio or Decimal(0))} right?"
            )
    if broken:
        warnings.append(f"{broken} consume log(s) have an `other` field that is not valid JSON")
    unchecked = out.status == NOT_REPRICEABLE
    if unchecked.any():
        quota = exact_sum(L.quota[unchecked])
        why = ", ".join(f"{k} {v:,}" for k, v in reasons.most_common())
        warnings.append(
            f"{int(unchecked.sum()):,} of {len(L.ids):,} consume log(s) ({quota:,} quota) could "
            f"not be re-priced, so their charges are unchecked: {why}"
        )
    return warnings
