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

from reconcile.books.amounts import read_money
from reconcile.books.book import close_book, open_book
from reconcile.books.cells import cell
from reconcile.books.problems import unreadable_frame
from reconcile.books.times import parse_time
from reconcile.core.results import Ledger
from reconcile.core.timefmt import day_texts
from reconcile.pricing.rules import Rules

INVOICE_COLUMNS = ("model_name", "date", "token_name", "amount", "currency", "quota")
REQUIRED = (("model_name",), ("amount", "quota"))


def load_invoice(path: Path, rules: Rules, tz: ZoneInfo, profile: Path | None = None) -> Ledger:
    """Read an invoice CSV; InputError only when the file as a whole cannot be read."""
    book = open_book(
        path, "invoice", rules.invoice, profile, INVOICE_COLUMNS, REQUIRED, ("model_name",)
    )
    cells, problems, table = book.cells, book.problems, book.table
    n = table.rows
    models = cells.strings("model_name")
    problems.add("model_name", np.asarray(pd.isna(models), dtype=bool), "missing model_name")

    days = pd.array([pd.NA] * n, dtype="string")
    if cells.has("date"):
        t_date = cells.text("date")
        times = parse_time(t_date, tz, book.settings.date_format)
        problems.add("date", times.empty, "missing date (this invoice is billed by day)")
        problems.add(
            "date",
            ~times.ok & ~times.empty,
            lambda i: f"{cell(t_date, i)!r} is not a day (YYYY-MM-DD)",
        )
        days = pd.array(day_texts(times.seconds, tz), dtype="string")
        days[~times.ok] = pd.NA

    tokens = cells.strings("token_name")
    money = read_money(cells, book.settings, rules, problems, book.decimal)
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
    book.notes += money.notes
    keys = ["model_name"] + [k for k in ("date", "token_name") if cells.has(k)]
    currency = money.currency or rules.report_currency
    return close_book(book, rows, unreadable_frame(table, problems), currency, "+".join(keys))
