"""The internal ledger CSV (one row per gateway log), read and validated row by row.

Canonical columns: log_id and/or request_id, created_at, type, quota (or amount + currency),
token_name, model_name. A row that cannot be read is kept in `Ledger.unreadable` with its line,
field, reason and text; it never stops the run and is never dropped.

Decisions where the contract is silent:
- quota wins over amount when a file has both; a row with an empty quota cell uses its amount.
- amounts with no currency column, no currency sign and no `currency` setting are not
  guessed: the file is rejected (InputError) when no row says its currency, otherwise each
  row without one is unreadable.
- amounts are positive; a negative one (`-12.50`, `(12.50)`, `12.50-`) is accepted only on a
  refund row, as its magnitude (finance systems often sign refunds), and unreadable elsewhere.
- a row needs log_id or request_id; with both columns, log_id is used and request_id only when
  the row's log_id cell is empty.
- `type` reads consume/refund/topup, 2/6/1 and 消费/退款/充值; error (5) and the other log types
  are not ledger entries, so such a row is unreadable.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa

from reconcile.books.cells import (
    TYPE_WORDS,
    BoolArray,
    IntArray,
    MoneyText,
    Problems,
    cell,
    clean,
    currency_code,
    detect_decimal,
    empty,
    map_words,
    money_text,
    parse_amount,
    parse_time,
    texts,
    to_quota,
    whole_numbers,
)
from reconcile.books.csvload import (
    Binding,
    CsvTable,
    bind_columns,
    header_matcher,
    load_profile,
    merge_maps,
    read_table,
)
from reconcile.core.results import Ledger
from reconcile.core.schema import REFUND, SEVERITY, UNREADABLE_ROW, findings_frame
from reconcile.errors import InputError
from reconcile.pricing.rules import ColumnMap, Rules

LEDGER_COLUMNS = (
    "log_id",
    "request_id",
    "created_at",
    "type",
    "token_name",
    "model_name",
    "quota",
    "amount",
    "currency",
)


def load_ledger(path: Path, rules: Rules, tz: ZoneInfo, profile: Path | None = None) -> Ledger:
    """Read a ledger CSV; InputError only when the file as a whole cannot be read."""
    settings = merge_maps(rules.ledger, load_profile(profile) if profile is not None else None)
    table = open_table(path, settings, LEDGER_COLUMNS, ("log_id", "request_id"))
    cells = Cells(table, bind_table(table, settings, LEDGER_COLUMNS, "ledger"))
    cols = cells.bind.index
    if "log_id" not in cols and "request_id" not in cols:
        raise missing_column(cells, "log_id", "log_id or request_id", "ledger")
    for name in ("created_at", "type"):
        if name not in cols:
            raise missing_column(cells, name, name, "ledger")
    if "quota" not in cols and "amount" not in cols:
        raise missing_column(cells, "quota", "quota or amount", "ledger")

    n = table.rows
    problems = Problems(n)
    row_shape(table, problems)
    decimal, notes = money_style(cells, settings)

    # ids: log_id where the row has one, else request_id
    log_ids = np.zeros(n, dtype=np.int64)
    has_log_id = np.zeros(n, dtype=bool)
    request_ids = cells.strings("request_id")
    has_request = ~np.asarray(pd.isna(request_ids), dtype=bool)
    if "log_id" in cols:
        t_id = cells.text("log_id")
        values, ok, blank = whole_numbers(t_id, decimal)
        problems.add(
            "log_id", ~blank & ~ok, lambda i: f"{cell(t_id, i)!r} is not a log id (a whole number)"
        )
        log_ids, has_log_id = np.where(ok, values, 0).astype(np.int64), ok
    problems.add(
        "log_id" if "log_id" in cols else "request_id",
        ~has_log_id & ~has_request & ~problems.on("log_id"),
        "missing log_id and request_id: the row cannot be matched to a log",
    )

    t_time = cells.text("created_at")
    times = parse_time(t_time, tz, settings.date_format)
    problems.add("created_at", times.empty, "missing created_at")
    problems.add(
        "created_at",
        times.local_gap,
        lambda i: (
            f"{cell(t_time, i)!r} does not exist or is ambiguous in {tz.key} "
            "(a daylight-saving change): write it with an offset"
        ),
    )
    problems.add(
        "created_at",
        ~times.ok & ~times.empty & ~times.local_gap,
        lambda i: (
            f"{cell(t_time, i)!r} is not a date and time "
            "(ISO 8601 like 2026-10-05 13:45:00, or unix seconds)"
        ),
    )

    t_type = cells.text("type")
    words, idx = map_words(t_type, lambda w: TYPE_WORDS.get(w.strip().lower()))
    types = np.array([w if w is not None else -1 for w in words] + [-1], dtype=np.int64)[idx]
    no_type = empty(t_type)
    problems.add("type", no_type, "missing type")
    problems.add(
        "type",
        (types < 0) & ~no_type,
        lambda i: f"{cell(t_type, i)!r} is not a ledger type (consume, refund, topup or 2, 6, 1)",
    )

    money = read_money(cells, settings, rules, problems, decimal)
    problems.add(
        money.sign_field,
        money.negative & (types != REFUND),
        lambda i: (
            f"{cell(cells.text(money.sign_field), i)!r} is negative: amounts are positive and "
            "the type gives the direction (only a refund may be written negative)"
        ),
    )

    good = ~problems.bad
    rows = pd.DataFrame(
        {
            "line": table.lines[good],
            "log_id": pd.arrays.IntegerArray(log_ids[good], ~has_log_id[good]),
            "request_id": request_ids[good],
            "created_at": times.seconds[good],
            "type": types[good],
            "token_name": cells.strings("token_name")[good],
            "model_name": cells.strings("model_name")[good],
            "quota": money.quota[good],
            "rounding": money.rounding[good],
        }
    )
    return Ledger(
        kind="ledger",
        path=str(path),
        sha256=table.sha256,
        rows=rows,
        unreadable=unreadable_frame(
            table, problems, log_ids=log_ids, has_log_id=has_log_id, request_ids=request_ids
        ),
        currency=money.currency or rules.report_currency,
        columns=dict(cells.bind.names),
        ignored_columns=list(cells.bind.ignored),
        encoding=table.encoding,
        delimiter=table.delimiter,
        match_key="log_id" if "log_id" in cols else "request_id",
        blank_rows=table.blank_rows,
        warnings=describe_reading(cells, notes + money.notes, "ledger"),
    )


def unreadable_findings(ledger: Ledger) -> pd.DataFrame:
    """One unreadable_row finding per row the loader could not read (ledger or invoice)."""
    bad = ledger.unreadable
    if not len(bad):
        return findings_frame({})
    n = len(bad)
    explanation = [
        f"line {line}: {fld}: {reason}; the row reads: {_snippet(raw)}"
        for line, fld, reason, raw in zip(
            bad["line"], bad["field"], bad["reason"], bad["raw"], strict=True
        )
    ]
    missing = pd.Series([pd.NA] * n, index=bad.index)
    return findings_frame(
        {
            "category": [UNREADABLE_ROW] * n,
            "severity": [SEVERITY[UNREADABLE_ROW]] * n,
            "source": [ledger.kind] * n,
            "log_id": bad.get("log_id", missing).to_numpy(),
            "ledger_line": bad["line"].to_numpy(),
            "request_id": bad.get("request_id", missing).to_numpy(),
            "explanation": explanation,
        }
    )


# --------------------------------------------------------------------------- shared with invoice


class Cells:
    """Each bound column's cleaned cells, read once (and split as money once)."""

    def __init__(self, table: CsvTable, bind: Binding) -> None:
        self.table = table
        self.bind = bind
        self._text: dict[str, Any] = {}
        self._money: dict[str, MoneyText] = {}

    def text(self, name: str) -> Any:
        if name not in self._text:
            self._text[name] = clean(self.table.column(self.bind.index[name]))
        return self._text[name]

    def money(self, name: str) -> MoneyText:
        if name not in self._money:
            self._money[name] = money_text(self.text(name))
        return self._money[name]

    def strings(self, name: str) -> Any:
        """A pandas "string" array, empty cells NA; all NA when the file has no such column."""
        if name not in self.bind.index:
            return texts(pa.nulls(self.table.rows, pa.string()))
        return texts(self.text(name))


def open_table(
    path: Path, settings: ColumnMap, canonical: tuple[str, ...], key: tuple[str, ...]
) -> CsvTable:
    return read_table(
        path,
        encoding=settings.encoding,
        delimiter=settings.delimiter,
        is_header=header_matcher(settings.columns, canonical, key),
    )


def bind_table(
    table: CsvTable, settings: ColumnMap, canonical: tuple[str, ...], setting: str
) -> Binding:
    return bind_columns(
        table.header,
        settings.columns,
        canonical,
        path=table.path,
        line=table.header_line,
        setting=setting,
    )


def missing_column(cells: Cells, name: str, what: str, setting: str) -> InputError:
    table = cells.table
    shown = ", ".join(repr(h) for h in table.header[:20]) or "none"
    return InputError(
        f"no {what} column among the file's columns ({shown}); name yours in the rules' "
        f'[{setting}.columns] or a profile\'s [columns], e.g. "Their Name" = "{name}"',
        file=table.path,
        line=table.header_line,
        field=name,
    )


def row_shape(table: CsvTable, problems: Problems) -> None:
    """Rows with more (non-empty) fields than the header cannot be trusted cell by cell."""
    if not table.overflow:
        return
    wide = np.zeros(table.rows, dtype=bool)
    wide[list(table.overflow)] = True
    width = len(table.header)
    problems.add(
        "(row)",
        wide,
        lambda i: (
            f"{table.overflow[i]} fields where the header has {width}: "
            "an unquoted separator inside a value?"
        ),
    )


def money_style(cells: Cells, settings: ColumnMap) -> tuple[str, list[str]]:
    """The decimal separator of the file: the setting, or detected from its money column."""
    if settings.decimal:
        return settings.decimal, []
    name = "quota" if "quota" in cells.bind.index else "amount"
    style, why = detect_decimal(cells.money(name), cells.table.delimiter)
    return style, [f"{name}: {why}"] if why else []


@dataclass
class Money:
    quota: IntArray  # magnitude in quota units
    negative: BoolArray  # the cell was written negative
    rounding: IntArray  # quota the written amount may be off by (0 for quota cells)
    currency: str  # most common currency of the amounts ("" for quota-only files)
    sign_field: str  # the column negative signs are reported on
    notes: list[str] = field(default_factory=list)


def read_money(
    cells: Cells, settings: ColumnMap, rules: Rules, problems: Problems, decimal: str
) -> Money:
    """Each row's amount in quota units: from `quota`, else `amount` at the rules' rate."""
    cols = cells.bind.index
    n = cells.table.rows
    quota = np.zeros(n, dtype=np.int64)
    negative = np.zeros(n, dtype=bool)
    rounding = np.zeros(n, dtype=np.int64)
    notes: list[str] = []
    use_amount = np.ones(n, dtype=bool)
    if "quota" in cols:
        qt = cells.text("quota")
        q = parse_amount(cells.money("quota"), decimal)
        step = np.int64(10**q.scale)
        no_symbol = np.asarray(pd.isna(q.symbol), dtype=bool)
        whole = q.ok & no_symbol & (q.units % step == 0)
        use_amount = q.empty if "amount" in cols else np.zeros(n, dtype=bool)
        if "amount" not in cols:
            problems.add("quota", q.empty, "missing quota")

        def quota_reason(i: int) -> str:
            text = cell(qt, i)
            if q.ok[i] and not no_symbol[i]:
                return (
                    f"{text!r} has a currency sign: quota is in quota units, money goes in amount"
                )
            if q.ok[i]:
                return f"{text!r} is not a whole number of quota units"
            return f"{text!r} is not a number"

        problems.add("quota", ~q.empty & ~whole, quota_reason)
        quota = np.where(whole, q.units // step, 0).astype(np.int64)
        negative = q.negative & whole
        if "amount" in cols:
            notes.append(
                "quota and amount columns: quota is used, amount only where quota is empty"
            )
    currency = ""
    if "amount" in cols and use_amount.any():
        currency = _amounts_to_quota(
            cells,
            settings,
            rules,
            problems,
            decimal,
            use_amount,
            (quota, negative, rounding),
            notes,
        )
    return Money(
        quota=quota,
        negative=negative,
        rounding=rounding,
        currency=currency,
        sign_field="quota" if "quota" in cols else "amount",
        notes=notes,
    )


def _amounts_to_quota(
    cells: Cells,
    settings: ColumnMap,
    rules: Rules,
    problems: Problems,
    decimal: str,
    rows: BoolArray,
    out: tuple[IntArray, BoolArray, IntArray],
    notes: list[str],
) -> str:
    """Convert `amount` cells of `rows` into `out` (quota, negative, rounding); the currency."""
    quota, negative, rounding = out
    table, cols = cells.table, cells.bind.index
    at = cells.text("amount")
    a = parse_amount(cells.money("amount"), decimal)
    need = "missing amount" if "quota" not in cols else "missing quota and amount"
    problems.add("amount", rows & a.empty, need)
    style = "a decimal comma" if decimal == "," else "a decimal point"

    def amount_reason(i: int) -> str:
        text = cell(at, i)
        if a.two_currencies[i]:
            return f"{text!r} names two currencies"
        return f"{text!r} is not an amount (this file is read with {style})"

    problems.add("amount", rows & ~a.empty & ~a.ok, amount_reason)

    code = np.full(table.rows, None, dtype=object)
    if settings.currency:
        default = currency_code(settings.currency)
        if default is None:
            raise InputError(
                f"{settings.currency!r} is not a currency code", file=table.path, field="currency"
            )
        code[:] = default
    has_symbol = ~np.asarray(pd.isna(a.symbol), dtype=bool)
    code[has_symbol] = a.symbol[has_symbol]
    if "currency" in cols:
        ct = cells.text("currency")
        words, idx = map_words(ct, lambda w: currency_code(w) if w.strip() else "")
        per_row = np.array([w or None for w in words] + [None], dtype=object)[idx]
        unknown = np.array([w is None for w in words] + [False], dtype=bool)[idx]
        problems.add(
            "currency", rows & unknown, lambda i: f"{cell(ct, i)!r} is not a currency code"
        )
        has_col = ~np.asarray(pd.isna(per_row), dtype=bool)
        clash = rows & has_col & has_symbol & (per_row != a.symbol)
        problems.add(
            "currency",
            clash,
            lambda i: (
                f"the amount {cell(at, i)!r} is in {a.symbol[i]} "
                f"but the currency column says {per_row[i]}"
            ),
        )
        code[has_col] = per_row[has_col]
    elif not settings.currency and not (rows & has_symbol).any() and (rows & a.ok).any():
        raise InputError(
            "amounts without a currency: add a currency column, write the sign ($12.50, "
            '¥90) or set currency = "USD" in the profile or the rules\' [ledger]/[invoice]',
            file=table.path,
            line=table.header_line,
            field="currency",
        )
    known = ~np.asarray(pd.isna(code), dtype=bool)
    problems.add(
        "currency",
        rows & a.ok & ~known,
        "no currency: add a currency column or a sign, or set `currency` in the profile",
    )
    usable = rows & a.ok & known
    counts: Counter[str] = Counter()
    for cur in sorted({str(c) for c in code[usable]}):
        sel = usable & (code == cur)
        try:
            rate = rules.rate(cur)
        except InputError:
            problems.add(
                "currency",
                sel,
                f"no exchange rate for {cur} in the rules' [currency] (units per 1 USD)",
            )
            continue
        q, r, too_big = to_quota(a.units[sel], a.scale, a.places[sel], rate, rules.quota_per_unit)
        if too_big.any():
            huge = np.zeros(table.rows, dtype=bool)
            huge[np.flatnonzero(sel)[too_big]] = True
            problems.add("amount", huge, lambda i: f"{cell(at, i)!r} is too large to be a quota")
        quota[sel] = q
        rounding[sel] = r
        negative[sel] = a.negative[sel]
        counts[cur] = int(sel.sum())
    if len(counts) > 1:
        notes.append(
            "amounts in several currencies: " + ", ".join(c for c, _ in counts.most_common())
        )
    return counts.most_common(1)[0][0] if counts else ""


def unreadable_frame(
    table: CsvTable,
    problems: Problems,
    *,
    log_ids: IntArray | None = None,
    has_log_id: BoolArray | None = None,
    request_ids: Any = None,
) -> pd.DataFrame:
    """line, field, reason, raw (and the row's ids when they could be read)."""
    where = np.flatnonzero(problems.bad)
    described = [problems.describe(int(i)) for i in where]
    ids = pd.arrays.IntegerArray(
        log_ids[where] if log_ids is not None else np.zeros(len(where), np.int64),
        ~has_log_id[where] if has_log_id is not None else np.ones(len(where), bool),
    )
    reqs = (
        request_ids[where]
        if request_ids is not None
        else pd.array([pd.NA] * len(where), dtype="string")
    )
    return pd.DataFrame(
        {
            "line": table.lines[where].astype(np.int64),
            "field": pd.array([d[0] for d in described], dtype="string"),
            "reason": pd.array([d[1] for d in described], dtype="string"),
            "raw": pd.array([table.raw(int(i)) for i in where], dtype="string"),
            "log_id": ids,
            "request_id": reqs,
        }
    )


def describe_reading(cells: Cells, notes: list[str], kind: str) -> list[str]:
    """What a reviewer should know about how the file was read."""
    table, bind = cells.table, cells.bind
    out: list[str] = []
    if table.encoding not in ("utf-8", "utf-8-sig"):
        out.append(f"{kind}: read as {table.encoding}")
    if table.preamble_lines:
        out.append(
            f"{kind}: {table.preamble_lines} line(s) above the header (line "
            f"{table.header_line}) skipped"
        )
    if table.blank_rows:
        out.append(f"{kind}: {table.blank_rows} empty row(s) skipped")
    if bind.ignored:
        out.append(f"{kind}: columns not used: {', '.join(bind.ignored)}")
    out += [f"{kind}: {note}" for note in notes]
    return out


def _snippet(raw: object, limit: int = 120) -> str:
    text = str(raw).replace("\r", " ").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
