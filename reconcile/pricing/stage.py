"""The pricing stage: re-price every consume log under the rules and explain each difference.

For each consume log: the rule that prices it (the best pattern in effect at its time), the
quota the contract gives (`reconcile.pricing.quota`, exact), and the verdict: ok, mismatch (beyond
tolerance, or the log's `other` shows ratios that differ from the contract), unpriced (no rule),
or not_repriceable (the log lacks what the formula needs, or carries surcharges the rules do not
price). Two passes keep a million logs fast: the first reads only the common keys of `other`;
the logs whose verdict could change with the rare keys (surcharges, async tasks, 5m/1h cache
writes) and whose text mentions one are read fully and judged again.

Choices where new-api's behaviour and the contract leave room:
- A log with no tokens is free, as on the gateway (token- or call-priced), unless it was
  charged: then a per-call model is an async task submission priced per call, and a
  token-priced one cannot be re-priced (its tokens, if any, are only in `content`).
- Ratios from `other` are float64; they differ from the contract's when further apart than
  1e-9 relatively, and only ratios that shaped the charge are compared (cache_ratio only with
  cache tokens, completion_ratio only with completion tokens).
- Anthropic usage semantics: `usage_semantic` = "anthropic", or, on older servers that did
  not write it, `claude` = true.
- Web/file search and other tool surcharges, separately priced audio, audio models, tiered
  billing and async task settlements are not re-priced: their prices are not in the rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reconcile.core import schema
from reconcile.core.results import Pricing
from reconcile.pricing.other import (
    EMPTY,
    PARSED,
    TOKEN_KEYS,
    UNREADABLE,
    OtherFields,
    mentions_rare,
    parse_other,
    parse_rows,
)
from reconcile.pricing.quota import Combo, TokenColumns, price_one, quota_columns, quota_exact
from reconcile.pricing.rules import Rules, plain

__all__ = ["PRICED_DTYPES", "STATUSES", "price_logs", "price_one"]

OK: Final = 0
MISMATCH: Final = 1
UNPRICED: Final = 2
NOT_REPRICEABLE: Final = 3
STATUSES: Final = ("ok", "mismatch", "unpriced", "not_repriceable")
_CATEGORY: Final = {
    MISMATCH: schema.PRICING_MISMATCH,
    UNPRICED: schema.UNPRICED_MODEL,
    NOT_REPRICEABLE: schema.NOT_REPRICEABLE,
}

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
}

#: A log of at least this many tokens that prices below 1 quota is worth a warning.
SMALL_PRICE_TOKENS: Final = 1000
_INT64_MAX: Final = 2**63 - 1
_RATIO_RTOL: Final = 1e-9  # `other` holds float64 ratios; closer than this is the same ratio
_EMPTY: Final = pa.scalar("", pa.large_string())
_NO_USAGE: Final = "no tokens reported: the gateway charges nothing"


def price_logs(logs: pd.DataFrame, rules: Rules, tz: ZoneInfo) -> Pricing:
    """Re-price every consume log (type 2) of `logs` (schema.LOG_DTYPES) under `rules`."""
    L = _Logs.read(logs)
    other = parse_other(L.frame["other"])
    combos = _Combos(rules)
    out = _evaluate(L, other, combos, rules, tz)
    # second pass: where the rare keys of `other` could change the verdict, read them
    unsure = (out.beyond | out.zero_charged | out.split_writes) & ~other.complete
    rows = mentions_rare(L.frame["other"], np.flatnonzero(unsure))
    if len(rows):
        parse_rows(L.frame["other"], rows, other)
        out.put(rows, _evaluate(L.take(rows), other.take(rows), combos, rules, tz))
    return Pricing(
        priced=_priced_frame(L, out, combos, rules),
        findings=_findings(L, out, tz),
        expected_quota=_safe_sum(out.expected[out.has_expected]),
        warnings=_warnings(L, out, other, rules),
    )


# ----------------------------------------------------------------------------- inputs


@dataclass
class _Logs:
    """The consume logs as plain numpy columns (and the frame, for text columns)."""

    frame: pd.DataFrame
    ids: npt.NDArray[np.int64]
    ts: npt.NDArray[np.int64]
    quota: npt.NDArray[np.int64]
    prompt: npt.NDArray[np.int64]
    completion: npt.NDArray[np.int64]
    model: pd.Series
    group: pd.Series

    @classmethod
    def read(cls, logs: pd.DataFrame) -> _Logs:
        types = logs["type"].to_numpy(dtype=np.int64, na_value=0)
        frame = logs.loc[types == schema.CONSUME].reset_index(drop=True)

        def ints(col: str) -> npt.NDArray[np.int64]:
            values: npt.NDArray[np.int64] = frame[col].to_numpy(dtype=np.int64, na_value=0)
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
        )

    def take(self, rows: npt.NDArray[np.intp]) -> _Logs:
        return _Logs(
            frame=self.frame.iloc[rows].reset_index(drop=True),
            ids=self.ids[rows],
            ts=self.ts[rows],
            quota=self.quota[rows],
            prompt=self.prompt[rows],
            completion=self.completion[rows],
            model=self.model.iloc[rows].reset_index(drop=True),
            group=self.group.iloc[rows].reset_index(drop=True),
        )


class _Combos:
    """The (rule, group) pairs met so far, each with its exact constants, shared by passes."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.items: list[Combo] = []
        self._index: dict[tuple[int, str], int] = {}

    def codes(self, rule_idx: npt.NDArray[np.int64], group: pd.Series) -> npt.NDArray[np.int64]:
        """The combo index of every log (-1 where no rule applies)."""
        out = np.full(len(rule_idx), -1, dtype=np.int64)
        priced = rule_idx >= 0
        if not priced.any():
            return out
        gcodes, gnames = pd.factorize(group)
        width = len(gnames) + 1
        local, keys = pd.factorize(rule_idx[priced] * width + gcodes[priced])
        mapping = np.empty(len(keys), dtype=np.int64)
        for j, key in enumerate(keys):
            r, g = divmod(int(key), width)
            mapping[j] = self._get(r, str(gnames[g]))
        out[priced] = mapping[local]
        return out

    def _get(self, rule_index: int, group: str) -> int:
        key = (rule_index, group)
        if key not in self._index:
            rule = self.rules.models[rule_index]
            ratio = self.rules.group_ratio(group)
            self.items.append(
                Combo.build(rule_index, rule, group, ratio, self.rules.quota_per_unit)
            )
            self._index[key] = len(self.items) - 1
        return self._index[key]


# ----------------------------------------------------------------------------- verdicts


@dataclass
class _Outcome:
    """Per-log results of one pass (every array aligned with the logs judged)."""

    rule_idx: npt.NDArray[np.int64]
    combo: npt.NDArray[np.int64]
    status: npt.NDArray[np.int8]
    reasons: npt.NDArray[np.object_]
    expected: npt.NDArray[np.int64]
    has_expected: npt.NDArray[np.bool_]
    lifted: npt.NDArray[np.bool_]  # the minimum of 1 applied
    beyond: npt.NDArray[np.bool_]  # charged differs from expected beyond tolerance
    zero_charged: npt.NDArray[np.bool_]  # token-priced, no tokens, yet charged
    split_writes: npt.NDArray[np.bool_]  # Anthropic cache writes (may split 5m / 1h)
    cache: npt.NDArray[np.int64]
    creation: npt.NDArray[np.int64]
    cache_known: npt.NDArray[np.bool_]
    creation_known: npt.NDArray[np.bool_]

    def put(self, rows: npt.NDArray[np.intp], other: _Outcome) -> None:
        for f in fields(self):
            getattr(self, f.name)[rows] = getattr(other, f.name)


def _evaluate(
    L: _Logs, other: OtherFields, combos: _Combos, rules: Rules, tz: ZoneInfo
) -> _Outcome:
    n = len(L.ids)
    rule_idx, has_candidates = _assign_rules(L, rules, tz)
    combo = combos.codes(rule_idx, L.group)
    priced = rule_idx >= 0
    items = combos.items
    per_call = np.zeros(n, dtype=bool)
    if priced.any():
        per_call[priced] = np.array([c.rule.per_call for c in items])[combo[priced]]
    tokens, bad_tokens = _tokens(L, other)

    status = np.where(priced, OK, UNPRICED).astype(np.int8)
    reasons = np.full(n, None, dtype=object)
    _not_repriceable(L, other, tokens, bad_tokens, priced, per_call, combo, items, reasons, status)
    _unpriced_reasons(L, ~priced, has_candidates, rules, tz, reasons)

    expected = np.zeros(n, dtype=np.int64)
    has_expected = status == OK
    lifted = np.zeros(n, dtype=bool)
    calls = has_expected & per_call
    if calls.any():
        expected[calls] = np.array([c.per_call_quota for c in items], dtype=np.int64)[combo[calls]]
        no_usage = calls & (L.prompt + L.completion == 0) & (L.quota == 0)
        expected[no_usage] = 0
        reasons[no_usage] = _NO_USAGE
    by_tokens = np.flatnonzero(has_expected & ~per_call)
    if len(by_tokens):
        quota, lift, too_big = quota_columns(_subset(tokens, by_tokens), items, combo[by_tokens])
        expected[by_tokens] = np.where(too_big, 0, quota)
        lifted[by_tokens] = lift
        for i in by_tokens[too_big]:
            q, one = _price_row(L, tokens, items[combo[i]], int(i))
            if abs(q) > _INT64_MAX:
                status[i] = NOT_REPRICEABLE
                reasons[i] = "the rules give a quota beyond the 64-bit range"
            else:
                expected[i], lifted[i] = q, one
        has_expected = status == OK
        unused = by_tokens[((L.prompt + L.completion)[by_tokens] == 0) & has_expected[by_tokens]]
        reasons[unused] = _NO_USAGE

    diff = L.quota - expected
    beyond = has_expected & ~_within(diff, L.quota, expected, rules)
    status[beyond] = MISMATCH
    reasons[beyond] = _plain_mismatch(other, per_call, beyond)
    differing, texts = _ratio_differences(L, other, tokens, per_call, combo, items, has_expected)
    status[differing] = MISMATCH
    reasons[differing] = texts

    ratio_priced = priced & ~per_call
    return _Outcome(
        rule_idx=rule_idx,
        combo=combo,
        status=status,
        reasons=reasons,
        expected=expected,
        has_expected=has_expected,
        lifted=lifted,
        beyond=beyond,
        zero_charged=ratio_priced & (L.prompt + L.completion == 0) & (L.quota != 0),
        split_writes=ratio_priced & tokens.anthropic & (tokens.creation > 0),
        cache=tokens.cache,
        creation=tokens.creation,
        cache_known=~np.isnan(other.floats["cache_tokens"]),
        creation_known=~np.isnan(other.floats["cache_creation_tokens"]),
    )


def _assign_rules(
    L: _Logs, rules: Rules, tz: ZoneInfo
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Each log's rule index (-1: none): the best pattern among the rules in effect then,
    and whether any rule's pattern matches its model at all."""
    n = len(L.ids)
    rule_idx = np.full(n, -1, dtype=np.int64)
    has_candidates = np.zeros(n, dtype=bool)
    codes, names = pd.factorize(L.model)
    if n == 0 or not len(names):
        return rule_idx, has_candidates
    order = np.argsort(codes, kind="stable")
    edges = np.searchsorted(codes[order], np.arange(len(names) + 1))
    position = {id(r): i for i, r in enumerate(rules.models)}
    for u, name in enumerate(names):
        candidates = rules.candidates(str(name)) if str(name) else []
        if not candidates:
            continue
        rows = order[edges[u] : edges[u + 1]]
        has_candidates[rows] = True
        local = np.full(len(rows), -1, dtype=np.int64)
        ts = L.ts[rows]
        for rule in candidates:
            start, end = rule.bounds(tz)
            free = local < 0
            if start is not None:
                free &= ts >= start
            if end is not None:
                free &= ts < end
            local[free] = position[id(rule)]
        rule_idx[rows] = local
    return rule_idx, has_candidates


def _unpriced_reasons(
    L: _Logs,
    unpriced: npt.NDArray[np.bool_],
    has_candidates: npt.NDArray[np.bool_],
    rules: Rules,
    tz: ZoneInfo,
    reasons: npt.NDArray[np.object_],
) -> None:
    """Why no rule prices each unpriced log, worded once per (model, local day)."""
    rows = np.flatnonzero(unpriced)
    if not len(rows):
        return
    models = L.model.iloc[rows].to_numpy(dtype=object)
    days = np.where(
        has_candidates[rows], _local(L.ts[rows], tz).astype("datetime64[D]").astype(str), ""
    )
    groups = pd.DataFrame({"m": models, "d": days}).groupby(["m", "d"], sort=False).ngroup()
    codes = groups.to_numpy()
    texts = []
    for j in pd.Series(np.arange(len(rows))).groupby(codes).first().to_numpy():
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
    reasons[rows] = np.array(texts, dtype=object)[codes]


def _tokens(L: _Logs, other: OtherFields) -> tuple[TokenColumns, npt.NDArray[np.bool_]]:
    """Token counts (absent = 0) and the logs whose `other` holds a count that is not whole >= 0."""
    counts: dict[str, npt.NDArray[np.int64]] = {}
    bad = np.zeros(len(L.ids), dtype=bool)
    for key in TOKEN_KEYS:
        x = other.floats[key]
        present = ~np.isnan(x)
        wrong = present & ((x < 0) | (x > 2.0**53) | (x != np.floor(np.where(present, x, 0))))
        for i in np.flatnonzero(wrong):
            other.problems.setdefault(int(i), f"`other` has an invalid {key}: {float(x[i])!r}")
        bad |= wrong
        counts[key] = np.where(present & ~wrong, x, 0).astype(np.int64)
    semantic = other.strings["usage_semantic"]
    # Anthropic usage: `usage_semantic` says so, or (older servers) `claude` is true
    anthropic = (semantic == "anthropic") | (pd.isna(semantic) & other.bools["claude"])
    columns = TokenColumns(
        prompt=L.prompt,
        completion=L.completion,
        cache=counts["cache_tokens"],
        creation=counts["cache_creation_tokens"],
        creation_5m=counts["cache_creation_tokens_5m"],
        creation_1h=counts["cache_creation_tokens_1h"],
        image=counts["image_output"],
        anthropic=np.asarray(anthropic, dtype=bool),
    )
    return columns, bad


def _subset(t: TokenColumns, rows: npt.NDArray[np.intp]) -> TokenColumns:
    return TokenColumns(**{f.name: getattr(t, f.name)[rows] for f in fields(t)})


def _not_repriceable(
    L: _Logs,
    other: OtherFields,
    tokens: TokenColumns,
    bad_tokens: npt.NDArray[np.bool_],
    priced: npt.NDArray[np.bool_],
    per_call: npt.NDArray[np.bool_],
    combo: npt.NDArray[np.int64],
    items: list[Combo],
    reasons: npt.NDArray[np.object_],
    status: npt.NDArray[np.int8],
) -> None:
    """Mark the priced logs whose fields cannot reproduce the charge; the first reason wins."""
    f, b, s = other.floats, other.bools, other.strings
    done = ~priced

    def mark(mask: npt.NDArray[np.bool_], why: str | Callable[[int], str]) -> None:
        new = np.flatnonzero(mask & ~done)
        if not len(new):
            return
        status[new] = NOT_REPRICEABLE
        for i in new:
            reasons[i] = why if isinstance(why, str) else why(int(i))
        done[new] = True

    def count(key: str) -> npt.NDArray[np.float64]:
        return np.nan_to_num(f[key])

    by_tokens = priced & ~per_call
    settlement = ~np.isnan(f["quota_delta"]) | ~np.isnan(f["actual_quota"])
    settlement |= ~np.isnan(f["pre_consumed_quota"])
    mark(settlement, "async task settlement: the charge is a difference against the pre-charge")
    mark(
        s["billing_mode"] == "tiered_expr",
        "priced by the gateway's tiered billing expression, which the rules do not hold",
    )
    mark(
        b["web_search"] | (count("web_search_call_count") > 0),
        lambda i: _surcharge("web search", f["web_search_call_count"][i]),
    )
    mark(
        b["file_search"] | (count("file_search_call_count") > 0),
        lambda i: _surcharge("file search", f["file_search_call_count"][i]),
    )
    mark(b["image_generation_call"], _surcharge("image generation", float("nan")))
    mark(
        other.surcharge_items > 0,
        lambda i: (
            f"includes {other.surcharge_items[i]} tool-call surcharge item(s) "
            "the rules do not price"
        ),
    )
    mark(
        b["audio_input_seperate_price"] | (count("audio_input_token_count") > 0),
        "audio input priced separately per million tokens, which the rules do not price",
    )
    # token pricing needs `other` (cache tokens, usage semantics) and sane token counts
    mark(
        by_tokens & (other.state == UNREADABLE),
        lambda i: (
            other.problems.get(i, "`other` is unreadable")
            + ", so its cache tokens and usage semantics are unknown"
        ),
    )
    mark(by_tokens & bad_tokens, lambda i: other.problems.get(i, "`other` has bad token counts"))
    mark(by_tokens & (b["audio"] | b["ws"]), "audio tokens priced with audio ratios the rules lack")
    mark(by_tokens & ((L.prompt < 0) | (L.completion < 0)), "negative token counts")
    if items:
        lacks = np.zeros(len(L.ids), dtype=bool)
        lacks[priced] = np.array([c.rule.image_ratio is None for c in items])[combo[priced]]
        mark(
            by_tokens & (tokens.image > 0) & lacks,
            lambda i: f"{tokens.image[i]} image input tokens need an image_ratio in the rule",
        )
    zero = by_tokens & (L.prompt + L.completion == 0) & (L.quota != 0)
    mark(zero & pd.notna(s["task_id"]), "async task: its tokens are only in the log's content")
    mark(
        zero,
        lambda i: (
            f"no tokens recorded, yet charged {L.quota[i]} quota (a surcharge or an async task?)"
        ),
    )


def _surcharge(what: str, count: float) -> str:
    calls = ""
    if count == count and count > 0:  # not NaN
        calls = f" ({int(count)} call{'s' if count != 1 else ''})"
    return f"includes a {what} surcharge{calls} the rules do not price"


def _price_row(L: _Logs, tokens: TokenColumns, combo: Combo, i: int) -> tuple[int, bool]:
    """One log too large for int64 arithmetic: the Decimal reference decides."""
    cache = (
        int(tokens.cache[i]),
        int(tokens.creation[i]),
        int(tokens.creation_5m[i]),
        int(tokens.creation_1h[i]),
    )
    return quota_exact(
        combo.rule,
        int(L.prompt[i]),
        int(L.completion[i]),
        combo.group_ratio,
        Decimal(0),  # quota_per_unit: only per-call rules use it, and they never come here
        cache,
        int(tokens.image[i]),
        bool(tokens.anthropic[i]),
    )


# ----------------------------------------------------------------------------- compare


def _within(
    diff: npt.NDArray[np.int64],
    charged: npt.NDArray[np.int64],
    expected: npt.NDArray[np.int64],
    rules: Rules,
) -> npt.NDArray[np.bool_]:
    """Tolerance: |diff| <= quota, or <= relative x the larger of the two (exact)."""
    tol = rules.tolerance
    ok: npt.NDArray[np.bool_] = np.abs(diff) <= tol.quota
    if tol.relative > 0:
        for i in np.flatnonzero(~ok):
            ok[i] = tol.allows(int(charged[i]), int(expected[i]))
    return ok


_COMPARED: Final = (
    "model_price",
    "model_ratio",
    "group_ratio",
    "completion_ratio",
    "cache_ratio",
    "cache_creation_ratio",
)


def _ratio_differences(
    L: _Logs,
    other: OtherFields,
    tokens: TokenColumns,
    per_call: npt.NDArray[np.bool_],
    combo: npt.NDArray[np.int64],
    items: list[Combo],
    has_expected: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.object_]]:
    """Logs whose `other` shows the gateway used ratios other than the contract's, and why.

    Only ratios that shaped this log's charge count (cache_ratio only with cache tokens...).
    """
    n = len(L.ids)
    f = other.floats
    rows = has_expected & (other.state == PARSED)
    nothing = (np.empty(0, dtype=np.intp), np.empty(0, dtype=object))
    if not items or not rows.any():
        return nothing

    def contract(get: Callable[[Combo], Decimal | None]) -> npt.NDArray[np.float64]:
        per_combo = np.array([float(get(c) or 0) for c in items], dtype=np.float64)
        out = np.full(n, np.nan)
        out[rows] = per_combo[combo[rows]]
        return out

    def differs(key: str, get: Callable[[Combo], Decimal | None]) -> npt.NDArray[np.bool_]:
        theirs, mine = f[key], contract(get)
        close = np.abs(theirs - mine) <= _RATIO_RTOL * np.maximum(np.abs(theirs), np.abs(mine))
        result: npt.NDArray[np.bool_] = rows & ~np.isnan(theirs) & ~close
        return result

    price = f["model_price"]
    they_per_call = ~np.isnan(price) & (price > 0)
    by_tokens = rows & ~per_call & ~they_per_call
    flags = {
        "per_call_used": rows & ~per_call & they_per_call,
        "ratio_used": rows & per_call & ~they_per_call & (np.nan_to_num(f["model_ratio"]) > 0),
        "model_price": rows
        & per_call
        & they_per_call
        & differs("model_price", lambda c: c.rule.model_price),
        "model_ratio": by_tokens & differs("model_ratio", lambda c: c.rule.model_ratio),
        "group_ratio": differs("group_ratio", lambda c: c.group_ratio),
        "completion_ratio": by_tokens
        & (L.completion > 0)
        & differs("completion_ratio", lambda c: c.rule.completion_ratio),
        "cache_ratio": by_tokens
        & (tokens.cache > 0)
        & differs("cache_ratio", lambda c: c.rule.cache_ratio),
        "cache_creation_ratio": by_tokens
        & (tokens.creation > 0)
        & differs("cache_creation_ratio", lambda c: c.rule.cache_creation_ratio),
    }
    flagged = np.zeros(n, dtype=bool)
    for v in flags.values():
        flagged |= v
    hits = np.flatnonzero(flagged)
    if not len(hits):
        return nothing
    # one text per distinct (combo, flags, values): systematic differences repeat a lot
    cols: dict[str, npt.NDArray[Any]] = {"combo": combo[hits]}
    cols |= {"f_" + k: v[hits] for k, v in flags.items()}
    cols |= {"v_" + k: f[k][hits] for k in _COMPARED}
    key = pd.DataFrame(cols)
    groups = key.groupby(list(key.columns), dropna=False, sort=False).ngroup().to_numpy()
    firsts = pd.Series(np.arange(len(hits))).groupby(groups).first().to_numpy()
    built = [_difference_text(items[int(key["combo"].iloc[j])], key.iloc[j]) for j in firsts]
    return hits, np.array(built, dtype=object)[groups]


def _difference_text(c: Combo, row: pd.Series) -> str:
    r = c.rule
    mine_price = plain(r.model_price or Decimal(0))
    mine_ratio = plain(r.model_ratio or Decimal(0))

    def theirs(k: str) -> str:
        return _float_text(float(row["v_" + k]))

    parts: list[str] = []
    if row["f_per_call_used"]:
        parts.append(
            f"gateway priced per call (model_price {theirs('model_price')}), "
            f"contract per token (model_ratio {mine_ratio})"
        )
    if row["f_ratio_used"]:
        parts.append(
            f"gateway priced per token (model_ratio {theirs('model_ratio')}), "
            f"contract per call (model_price {mine_price})"
        )
    if row["f_model_price"]:
        parts.append(f"gateway used model_price {theirs('model_price')}, contract {mine_price}")
    if row["f_model_ratio"]:
        parts.append(f"gateway used model_ratio {theirs('model_ratio')}, contract {mine_ratio}")
    if row["f_group_ratio"]:
        parts.append(
            f"gateway used group_ratio {theirs('group_ratio')}, contract "
            f"{plain(c.group_ratio)} for group {c.group!r}"
        )
    for k, mine in (
        ("completion_ratio", r.completion_ratio),
        ("cache_ratio", r.cache_ratio),
        ("cache_creation_ratio", r.cache_creation_ratio),
    ):
        if row["f_" + k]:
            parts.append(f"gateway used {k} {theirs(k)}, contract {plain(mine)}")
    return "; ".join(parts)


def _float_text(x: float) -> str:
    """A float64 from `other` as the shortest decimal that reads back to it (as Go wrote it)."""
    return plain(Decimal(repr(x)))


_PLAIN_MISMATCH: Final = np.array(
    [
        "the log records no ratios to compare",
        "the log's model_price agrees with the contract, yet the charge differs",
        "the log's ratios agree with the contract, yet the charge differs",
    ],
    dtype=object,
)


def _plain_mismatch(
    other: OtherFields, per_call: npt.NDArray[np.bool_], rows: npt.NDArray[np.bool_]
) -> npt.NDArray[np.object_]:
    """Why the charges of `rows` differ when their logs show no other ratio."""
    f = other.floats
    silent = (other.state == EMPTY) | (np.isnan(f["model_ratio"]) & np.isnan(f["model_price"]))
    code = np.where(silent[rows], 0, np.where(per_call[rows], 1, 2))
    out: npt.NDArray[np.object_] = _PLAIN_MISMATCH[code]
    return out


# ----------------------------------------------------------------------------- output


def _strings(values: list[str] | list[str | None], codes: npt.NDArray[np.int64]) -> pd.Series:
    """codes -> values[code] (code < 0: NA) as a pandas string column, without a Python loop."""
    dictionary = pa.array([*values, None], type=pa.large_string())
    index = np.where(codes < 0, len(values), codes)
    return pd.Series(pd.array(dictionary.take(pa.array(index)), dtype="string"))


def _coded(values: npt.NDArray[np.object_]) -> pd.Series:
    """An object array of few distinct strings (None: "") as a string column, fast."""
    filled = np.flatnonzero(pd.notna(values))
    codes = np.full(len(values), -1, dtype=np.int64)
    uniques: list[str] = []
    if len(filled):
        local, found = pd.factorize(values[filled])
        codes[filled] = local
        uniques = [str(u) for u in found]
    return _strings([*uniques, ""], np.where(codes < 0, len(uniques), codes))


def _nullable(values: npt.NDArray[np.int64], present: npt.NDArray[np.bool_]) -> pd.Series:
    return pd.Series(pd.arrays.IntegerArray(values.astype(np.int64), ~present))


def _priced_frame(L: _Logs, out: _Outcome, combos: _Combos, rules: Rules) -> pd.DataFrame:
    models = rules.models
    idx = out.rule_idx

    def rule_text(get: Callable[[Any], Decimal | None], tokens_only: bool = False) -> pd.Series:
        vals = [None if tokens_only and r.per_call else get(r) for r in models]
        return _strings([None if v is None else plain(v) for v in vals], idx)

    lines = np.array([r.line for r in models] or [0], dtype=np.int64)[np.maximum(idx, 0)]
    has = out.has_expected
    frame = pd.DataFrame(
        {
            "id": pd.Series(L.ids, dtype="int64"),
            "rule": _strings([r.match for r in models], idx),
            "rule_line": _nullable(lines, idx >= 0),
            "model_ratio": rule_text(lambda r: r.model_ratio),
            "completion_ratio": rule_text(lambda r: r.completion_ratio, tokens_only=True),
            "cache_ratio": rule_text(lambda r: r.cache_ratio, tokens_only=True),
            "cache_creation_ratio": rule_text(lambda r: r.cache_creation_ratio, tokens_only=True),
            "group_ratio": _strings([plain(c.group_ratio) for c in combos.items], out.combo),
            "model_price": rule_text(lambda r: r.model_price),
            "cache_tokens": _nullable(out.cache, out.cache_known),
            "cache_creation_tokens": _nullable(out.creation, out.creation_known),
            "expected_quota": _nullable(out.expected, has),
            "diff_quota": _nullable(np.where(has, L.quota - out.expected, 0), has),
            "status": _strings(list(STATUSES), out.status.astype(np.int64)),
            "reason": _coded(out.reasons),
        }
    )
    return frame[list(PRICED_DTYPES)]


def _local(ts: npt.NDArray[np.int64], tz: ZoneInfo) -> npt.NDArray[np.datetime64]:
    """Wall-clock time in `tz` of unix seconds, as naive datetime64[s]."""
    utc = pd.DatetimeIndex(pd.to_datetime(ts, unit="s", utc=True))
    local: npt.NDArray[np.datetime64] = (
        utc.tz_convert(tz).tz_localize(None).to_numpy().astype("datetime64[s]")
    )
    return local


def _iso(ts: npt.NDArray[np.int64], tz: ZoneInfo) -> pd.Series:
    """ISO 8601 with the offset in `tz` (2026-10-01T08:00:00+08:00), vectorised."""
    local = _local(ts, tz)
    wall = pa.array(np.datetime_as_string(local, unit="s"), type=pa.large_string())
    uniq, inverse = np.unique(local.astype(np.int64) - ts, return_inverse=True)
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


def _findings(L: _Logs, out: _Outcome, tz: ZoneInfo) -> pd.DataFrame:
    """One finding per log that is not ok; explanations built a column at a time."""
    rows = np.flatnonzero(out.status != OK)
    if not len(rows):
        return schema.empty_findings()
    status = out.status[rows].astype(np.int64)
    charged, expected = L.quota[rows], out.expected[rows]
    diff = charged - expected
    is_mismatch = status == MISMATCH
    at_stake = np.where(is_mismatch, np.abs(diff), charged)

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
    text_cols = L.frame[["request_id", "token_name", "model_name", "group"]].iloc[rows]
    text_cols = text_cols.reset_index(drop=True)
    return schema.findings_frame(
        {
            "category": _strings(categories, status),
            "severity": _strings([schema.SEVERITY.get(c, "") for c in categories], status),
            "source": "pricing",
            "log_id": L.ids[rows],
            "request_id": text_cols["request_id"],
            "created_at": _iso(L.ts[rows], tz),
            "type": schema.TYPE_NAMES[schema.CONSUME],
            "token_name": text_cols["token_name"],
            "model_name": text_cols["model_name"],
            "group": text_cols["group"],
            "log_quota": charged,
            "expected_quota": pd.arrays.IntegerArray(expected, ~out.has_expected[rows]),
            "diff_quota": at_stake,
            "explanation": _arrow_strings(explanation),
        }
    )


def _warnings(L: _Logs, out: _Outcome, other: OtherFields, rules: Rules) -> list[str]:
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
    broken = int((other.state == UNREADABLE).sum())
    if broken:
        warnings.append(f"{broken} consume log(s) have an `other` field that is not valid JSON")
    return warnings


def _safe_sum(values: npt.NDArray[np.int64]) -> int:
    if not len(values):
        return 0
    if int(np.abs(values).max()) <= (2**62) // len(values):
        return int(values.sum())
    return sum(int(v) for v in values)
