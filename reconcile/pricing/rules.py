"""The pricing contract: a TOML rules file validated into typed, exact-decimal rules.

Numbers are read from the text as written (tomllib with ``parse_float=Decimal``), so a ratio
written ``1.25`` is exactly 1.25 and never the nearest binary float. Every problem is one
InputError naming the file, the line and the field, because a finance user fixes rules files
by hand and needs to be told where.
"""

from __future__ import annotations

import hashlib
import tomllib
from datetime import date
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from reconcile.errors import InputError
from reconcile.pricing.contract import (
    CACHE_CREATION_1H_MULTIPLIER,
    DEFAULT_CACHE_CREATION_RATIO,
    DEFAULT_CACHE_RATIO,
    DEFAULT_COMPLETION_RATIO,
    ColumnMap,
    ModelRule,
    Rules,
    Tolerance,
)
from reconcile.pricing.rules_paths import (
    PATH_KEYS,
    group_pairs,
    overflow_problem,
    validate_path_keys,
)
from reconcile.pricing.rules_toml import (
    _CURRENCY_CODE,
    MAX_NUMBER,
    MAX_QUOTA_PER_UNIT,
    _Checker,
    _Lines,
    _syntax_error,
    glob_problem,
    plain,
)

__all__ = [
    "CACHE_CREATION_1H_MULTIPLIER",
    "DEFAULT_CACHE_CREATION_RATIO",
    "DEFAULT_CACHE_RATIO",
    "DEFAULT_COMPLETION_RATIO",
    "MAX_NUMBER",
    "ColumnMap",
    "ModelRule",
    "Rules",
    "Tolerance",
    "glob_problem",
    "load_rules",
    "parse_rules",
    "plain",
]

#: new-api's defaults for a model that does not configure them (setting/ratio_setting).

# --------------------------------------------------------------------------- loading

TOP_KEYS: Final = (
    "quota_per_unit",
    "report_currency",
    "currency",
    "tolerance",
    "groups",
    "group_pairs",
    "model",
    "ledger",
    "invoice",
)
TOLERANCE_KEYS: Final = ("quota", "relative", "seconds")
RATIO_KEYS: Final = (
    "model_ratio",
    "completion_ratio",
    "cache_ratio",
    "cache_creation_ratio",
    "cache_creation_ratio_1h",
    "image_ratio",
)
MODEL_KEYS: Final = (
    "match",
    *RATIO_KEYS,
    "model_price",
    *PATH_KEYS,
    "effective_from",
    "effective_to",
)
#: Keys that only make sense for token pricing; a per-call rule must not carry them.
TOKEN_ONLY_KEYS: Final = tuple(k for k in RATIO_KEYS if k != "model_ratio")
#: Upper bounds that catch typos (a ratio of 1e6 is $2,000 per 1K tokens).


def _validate_model(ck: _Checker, raw: Any, index: int) -> ModelRule:
    where: tuple[Any, ...] = ("model", index)
    if not isinstance(raw, dict):
        raise ck.fail("each [[model]] must be a table", where, "model")
    ck.unknown(raw, MODEL_KEYS, where, "")
    if "match" not in raw:
        raise ck.fail('a [[model]] needs match = "model name or glob"', where, "match")
    match = raw["match"]
    if not isinstance(match, str):
        raise ck.fail(f"must be a string, not {type(match).__name__}", (*where, "match"), "match")
    problem = glob_problem(match)
    if problem:
        raise ck.fail(f"{match!r} {problem}", (*where, "match"), "match")
    ctx = f"(in [[model]] match = {match!r})"
    values: dict[str, Any] = {"match": match}
    for key in (*RATIO_KEYS, "model_price"):
        if key in raw:
            values[key] = ck.number(raw[key], (*where, key), key, context=ctx)
    if "model_ratio" in values and "model_price" in values:
        raise ck.fail(
            f"give model_ratio (per token) or model_price (per call), not both {ctx}",
            (*where, "model_price"),
            "model_price",
        )
    if "model_ratio" not in values and "model_price" not in values:
        raise ck.fail(
            f"needs model_ratio (per token) or model_price (USD per call) {ctx}",
            where,
            "model_ratio",
        )
    if "model_price" in values:
        for key in TOKEN_ONLY_KEYS:
            if key in values:
                raise ck.fail(
                    f"{key} applies to token pricing only; this rule has "
                    f"model_price (per call) {ctx}",
                    (*where, key),
                    key,
                )
    values |= validate_path_keys(ck, raw, where, ctx, "model_price" in values)
    for key in ("effective_from", "effective_to"):
        if key in raw:
            values[key] = ck.day(raw[key], (*where, key), key, ctx)
    start, end = values.get("effective_from"), values.get("effective_to")
    if start is not None and end is not None and end <= start:
        raise ck.fail(
            f"{end.isoformat()} is not after effective_from {start.isoformat()} "
            f"(effective_to is exclusive) {ctx}",
            (*where, "effective_to"),
            "effective_to",
        )
    line = ck.lines.of(*where) or 0
    return ModelRule(**values, line=line)


def _check_overlaps(ck: _Checker, models: list[ModelRule]) -> None:
    """Two rules for the same pattern must not both be in effect on any day."""
    by_pattern: dict[str, list[tuple[int, ModelRule]]] = {}
    for i, rule in enumerate(models):
        by_pattern.setdefault(rule.match, []).append((i, rule))
    for pattern, group in by_pattern.items():
        ordered = sorted(group, key=lambda ir: (ir[1].effective_from or date.min, ir[0]))
        for (_, prev), (i, cur) in pairwise(ordered):
            prev_end = prev.effective_to or date.max
            cur_start = cur.effective_from or date.min
            if cur_start < prev_end:
                raise ck.fail(
                    f"the rule for {pattern!r} ({cur.describe_dates()}) overlaps the one at "
                    f"line {prev.line} ({prev.describe_dates()}); give each rule of a pattern "
                    "its own effective_from / effective_to",
                    ("model", i, "effective_from"),
                    "effective_from",
                )


def _check_overflow(ck: _Checker, models: list[ModelRule], out: dict[str, Any]) -> None:
    """A per-call price whose quota overflows int64 is refused here, not crashed on later."""
    qpu = out.get("quota_per_unit", Decimal(500000))
    ratios = [*out.get("groups", {}).values()]
    ratios += [r for p in out.get("group_pairs", {}).values() for r in p.values()]
    for i, rule in enumerate(models):
        if rule.model_price is None:
            continue
        prices = [rule.model_price, *rule.image_prices.values()]
        problem = overflow_problem(prices, qpu, ratios)
        if problem:
            raise ck.fail(
                f"{problem} (in [[model]] match = {rule.match!r})",
                ("model", i, "model_price"),
                "model_price",
            )


def _column_map(ck: _Checker, raw: Any, name: str) -> ColumnMap:
    table = ck.table(raw, (name,), name)
    try:
        return ColumnMap.model_validate(table)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(str(x) for x in err["loc"])
        raise ck.fail(err["msg"], (name, *loc), ".".join((name, *loc))) from None


def parse_rules(text: str, path: str | Path = "<rules>") -> Rules:
    """Validate rules from TOML text; `path` is only used in messages."""
    p = Path(path)
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(exc, text, p) from None
    lines = _Lines(text)
    ck = _Checker(p, lines)
    ck.unknown(data, TOP_KEYS, (), "")
    out: dict[str, Any] = {}
    if "quota_per_unit" in data:
        out["quota_per_unit"] = ck.number(
            data["quota_per_unit"],
            ("quota_per_unit",),
            "quota_per_unit",
            positive=True,
            maximum=MAX_QUOTA_PER_UNIT,
        )
    if "report_currency" in data:
        code = data["report_currency"]
        if not isinstance(code, str) or not _CURRENCY_CODE.match(code.strip()):
            raise ck.fail(
                f'must be a currency code like "USD" or "CNY", not {code!r}',
                ("report_currency",),
                "report_currency",
            )
        out["report_currency"] = code.strip().upper()
    if "currency" in data:
        rates: dict[str, Decimal] = {}
        for code, rate in ck.table(data["currency"], ("currency",), "currency").items():
            if not _CURRENCY_CODE.match(code):
                raise ck.fail(
                    f"{code!r} is not a currency code (three letters, e.g. CNY)",
                    ("currency", code),
                    f"currency.{code}",
                )
            rates[code.upper()] = ck.number(
                rate,
                ("currency", code),
                f"currency.{code}",
                positive=True,
                context="(units per 1 USD)",
            )
        out["currency"] = rates
    report = out.get("report_currency", "USD")
    if report != "USD" and report not in out.get("currency", {}):
        raise ck.fail(
            f"{report} has no exchange rate: add {report} = <units per 1 USD> under [currency]",
            ("report_currency",),
            "report_currency",
        )
    if "tolerance" in data:
        tol = ck.table(data["tolerance"], ("tolerance",), "tolerance")
        ck.unknown(tol, TOLERANCE_KEYS, ("tolerance",), "tolerance")
        values: dict[str, Any] = {}
        if "quota" in tol:
            q = ck.number(
                tol["quota"], ("tolerance", "quota"), "tolerance.quota", maximum=MAX_QUOTA_PER_UNIT
            )
            if q != q.to_integral_value():
                raise ck.fail(
                    f"must be a whole number of quota units, not {plain(q)}",
                    ("tolerance", "quota"),
                    "tolerance.quota",
                )
            values["quota"] = int(q)
        if "relative" in tol:
            r = ck.number(tol["relative"], ("tolerance", "relative"), "tolerance.relative")
            if r > 1:
                raise ck.fail(
                    f"is a fraction of the larger amount (0.01 = 1%), not {plain(r)}",
                    ("tolerance", "relative"),
                    "tolerance.relative",
                )
            values["relative"] = r
        if "seconds" in tol:
            sec = ck.number(
                tol["seconds"],
                ("tolerance", "seconds"),
                "tolerance.seconds",
                maximum=Decimal(86400),
            )
            if sec != sec.to_integral_value():
                raise ck.fail(
                    f"must be a whole number of seconds, not {plain(sec)}",
                    ("tolerance", "seconds"),
                    "tolerance.seconds",
                )
            values["seconds"] = int(sec)
        out["tolerance"] = Tolerance(**values)
    if "groups" in data:
        groups: dict[str, Decimal] = {}
        for name, ratio in ck.table(data["groups"], ("groups",), "groups").items():
            groups[name] = ck.number(
                ratio, ("groups", name), f"groups.{name}", context=f"(ratio of group {name!r})"
            )
        out["groups"] = groups
    if "group_pairs" in data:
        out["group_pairs"] = group_pairs(ck, data["group_pairs"])
    if "model" in data:
        raw_models = data["model"]
        if not isinstance(raw_models, list):
            raise ck.fail("write each model as a [[model]] table", ("model",), "model")
        models = [_validate_model(ck, raw, i) for i, raw in enumerate(raw_models)]
        _check_overlaps(ck, models)
        _check_overflow(ck, models, out)
        out["models"] = models
    for name in ("ledger", "invoice"):
        if name in data:
            out[name] = _column_map(ck, data[name], name)
    try:
        return Rules.model_validate(out)
    except ValidationError as exc:  # a constraint the checks above did not anticipate
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        raise ck.fail(err["msg"], loc, ".".join(str(x) for x in loc)) from None


def load_rules(path: str | Path) -> Rules:
    """Read and validate a rules file; every problem is an InputError naming file and line."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read rules file: {exc.strerror}", file=p) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError("not UTF-8 text", file=p, line=line) from None
    rules = parse_rules(text, p)
    rules.path = str(p)
    rules.sha256 = hashlib.sha256(raw).hexdigest()
    return rules
