"""An invoice CSV (aggregated charges), read and validated row by row.

Canonical columns: model_name, amount + currency (or quota), and optionally date and
token_name; which optional columns are present decides the keys lines are compared on
(model; model+day; model+token; model+day+token). Amounts convert to quota exactly at the
rules' rates, like ledger amounts.

Decisions where the contract is silent:
- a negative amount is a credit line and kept negative: lines with the same key are summed
  before comparing (invoices often split one model's charge into several lines).
- a `date` cell may be a day (`2026-10-05`, `2026/10/5`) or a full timestamp, taken as its day
  in the run's time zone; a month (`2026-10`) is not a day and is unreadable.
- an empty token_name cell in a token-keyed invoice is a key of its own ("" = logs with no
  token name), not an error.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from reconcile.books.cells import Problems, cell, parse_time
from reconcile.books.csvload import load_profile, merge_maps
from reconcile.books.ledger import (
    Cells,
    bind_table,
    describe_reading,
    missing_column,
    money_style,
    open_table,
    read_money,
    row_shape,
    unreadable_frame,
)
from reconcile.core.results import Ledger
from reconcile.pricing.rules import Rules

INVOICE_COLUMNS = ("model_name", "date", "token_name", "amount", "currency", "quota")


def load_invoice(path: Path, rules: Rules, tz: ZoneInfo, profile: Path | None = None) -> Ledger:
    """Read an invoice CSV; InputError only when the file as a whole cannot be read."""
    settings = merge_maps(rules.invoice, load_profile(profile) if profile is not None else None)
    table = open_table(path, settings, INVOICE_COLUMNS, ("model_name",))
    cells = Cells(table, bind_table(table, settings, INVOICE_COLUMNS, "invoice"))
    cols = cells.bind.index
    if "model_name" not in cols:
        raise missing_column(cells, "model_name", "model_name", "invoice")
    if "quota" not in cols and "amount" not in cols:
        raise missing_column(cells, "amount", "amount or quota", "invoice")

    n = table.rows
    problems = Problems(n)
    row_shape(table, problems)
    models = cells.strings("model_name")
    problems.add("model_name", np.asarray(pd.isna(models), dtype=bool), "missing model_name")

    days = pd.array([pd.NA] * n, dtype="string")
    if "date" in cols:
        t_date = cells.text("date")
        times = parse_time(t_date, tz, settings.date_format)
        problems.add("date", times.empty, "missing date (this invoice is billed by day)")
        problems.add(
            "date",
            ~times.ok & ~times.empty,
            lambda i: f"{cell(t_date, i)!r} is not a day (YYYY-MM-DD)",
        )
        local = pd.to_datetime(times.seconds, unit="s", utc=True).tz_convert(tz)
        days = pd.array(np.asarray(local.strftime("%Y-%m-%d"), dtype=object), dtype="string")
        days[~times.ok] = pd.NA

    tokens = cells.strings("token_name")
    decimal, notes = money_style(cells, settings)
    money = read_money(cells, settings, rules, problems, decimal)
    signed = np.where(money.negative, -money.quota, money.quota).astype(np.int64)

    good = ~problems.bad
    rows = pd.DataFrame(
        {
            "line": table.lines[good],
            "model_name": models[good],
            "date": days[good],
            "token_name": tokens[good],
            "quota": signed[good],
            "rounding": money.rounding[good],
        }
    )
    keys = ["model_name"] + [k for k in ("date", "token_name") if k in cols]
    return Ledger(
        kind="invoice",
        path=str(path),
        sha256=table.sha256,
        rows=rows,
        unreadable=unreadable_frame(table, problems),
        currency=money.currency or rules.report_currency,
        columns=dict(cells.bind.names),
        ignored_columns=list(cells.bind.ignored),
        encoding=table.encoding,
        delimiter=table.delimiter,
        match_key="+".join(keys),
        blank_rows=table.blank_rows,
        warnings=describe_reading(cells, notes + money.notes, "invoice"),
    )
