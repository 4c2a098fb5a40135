"""The internal ledger CSV (one row per gateway log), read and validated row by row.

Canonical columns: created_at, type, quota (or amount + currency), and as available log_id,
request_id, token_name, model_name, prompt_tokens, completion_tokens. A row that cannot be
read is kept in `Ledger.unreadable` with its line, field, reason and text; it never stops the
run and is never dropped.

Decisions where the contract is silent:
- quota wins over amount when a file has both; a row with an empty quota cell uses its amount.
- amounts with no currency column, no currency sign and no `currency` setting are not
  guessed: the file is rejected (InputError) when no row says its currency, otherwise each
  row without one is unreadable.
- amounts are positive; a negative one (`-12.50`, `(12.50)`, `12.50-`) is accepted only on a
  refund row, as its magnitude (finance systems often sign refunds), and unreadable elsewhere.
  `-0` is zero, not negative.
- ids are optional, per row: the matcher uses log_id, else request_id, else the row's content
  (token, model, type, token counts, time); a customer's own books usually carry no ids.
- `type` reads consume/refund/topup, 2/6/1 and 消费/退款/充值; error (5) and the other log types
  are not ledger entries, so such a row is unreadable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from reconcile.books.amounts import read_money
from reconcile.books.book import Book, close_book, open_book
from reconcile.books.cells import TYPE_WORDS, cell, empty, map_words, whole_numbers
from reconcile.books.problems import unreadable_frame
from reconcile.books.times import parse_time
from reconcile.core.results import Ledger
from reconcile.core.schema import REFUND
from reconcile.pricing.rules import Rules

LEDGER_COLUMNS = (
    "log_id",
    "request_id",
    "created_at",
    "type",
    "token_name",
    "model_name",
    "prompt_tokens",
    "completion_tokens",
    "quota",
    "amount",
    "currency",
)
#: Names that make a row the header (title lines above it are skipped).
HEADER_NAMES = ("log_id", "request_id", "created_at", "quota", "amount")
REQUIRED = (("created_at",), ("type",), ("quota", "amount"))


def load_ledger(path: Path, rules: Rules, tz: ZoneInfo, profile: Path | None = None) -> Ledger:
    """Read a ledger CSV; InputError only when the file as a whole cannot be read.

    A large file is read in pieces when that reads it exactly as whole (books/pieces.py).
    """
    from reconcile.books.pieces import load_in_pieces  # it reads books through this module

    ledger = load_in_pieces(path, rules, tz, profile)
    if ledger is not None:
        return ledger
    book = open_ledger(path, rules, profile)
    return close_book(book, *read_rows(book, rules, tz))


def open_ledger(path: Path, rules: Rules, profile: Path | None, raw: bytes | None = None) -> Book:
    """The ledger file (or `raw`, a piece of it with its header) opened and bound."""
    return open_book(
        path, "ledger", rules.ledger, profile, LEDGER_COLUMNS, REQUIRED, HEADER_NAMES, raw
    )


def read_rows(
    book: Book, rules: Rules, tz: ZoneInfo
) -> tuple[pd.DataFrame, pd.DataFrame, str, str]:
    """The book's rows and unreadable rows, its currency and what it is matched on."""
    cells, problems = book.cells, book.problems
    table = book.table
    log_ids, has_log_id = _log_ids(book)
    request_ids = cells.strings("request_id")
    t_time = cells.text("created_at")
    times = parse_time(t_time, tz, book.settings.date_format)
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

    prompt = _token_count(book, "prompt_tokens")
    completion = _token_count(book, "completion_tokens")
    money = read_money(cells, book.settings, rules, problems, book.decimal)
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
            "prompt_tokens": prompt[good],
            "completion_tokens": completion[good],
            "quota": money.quota[good],
            "rounding": money.rounding[good],
        }
    )
    book.notes += money.notes
    unreadable = unreadable_frame(
        table, problems, log_ids=log_ids, has_log_id=has_log_id, request_ids=request_ids
    )
    keys = [k for k in ("log_id", "request_id") if cells.has(k)] or ["content"]
    return rows, unreadable, money.currency or rules.report_currency, "+".join(keys)


def _log_ids(book: Book) -> tuple[Any, Any]:
    """Each row's log id (0 where none) and whether it has one; a bad id is unreadable."""
    n = book.table.rows
    if not book.cells.has("log_id"):
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    text = book.cells.text("log_id")
    values, ok, blank = whole_numbers(text, book.decimal)
    book.problems.add(
        "log_id", ~blank & ~ok, lambda i: f"{cell(text, i)!r} is not a log id (a whole number)"
    )
    return np.where(ok, values, 0).astype(np.int64), ok


def _token_count(book: Book, name: str) -> pd.arrays.IntegerArray:
    """A token count column (NA where empty or absent); a cell that is not one is unreadable."""
    n = book.table.rows
    if not book.cells.has(name):
        return pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool))
    text = book.cells.text(name)
    values, ok, blank = whole_numbers(text, book.decimal)
    book.problems.add(
        name, ~blank & ~ok, lambda i: f"{cell(text, i)!r} is not a token count (a whole number)"
    )
    return pd.arrays.IntegerArray(np.where(ok, values, 0).astype(np.int64), ~ok)
