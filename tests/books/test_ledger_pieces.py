"""A large ledger read in pieces is read exactly as whole: rows, lines, problems, notes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from match_helpers import fixture_rules, period

from reconcile.books.ledger import load_ledger
from reconcile.books.pieces import load_in_pieces

BODY = [
    "1,2026-10-01T00:00:20+08:00,consume,gpt-4o,100",
    "2,2026-10-01 08:00:00,refund,gpt-4o,-30",
    "",
    "3,2026-10-02 09:00:00,error,gpt-4o,5",
    "x4,2026-10-03 09:00:00,consume,gpt-4o,7",
    "5,2026-10-04 10:00:00,consume,gpt-4o,lots",
    ";;;",
    "6,2026-10-05 11:00:00,consume,gpt-4o,9,extra",
    "7,,consume,gpt-4o,9",
    "8,2026-10-06 12:00:00,topup,,500",
] * 7


def write_ledger(tmp_path: Path, body: list[str], line_end: str = "\r\n") -> Path:
    path = tmp_path / "ledger.csv"
    lines = ["Ledger export for October", "log_id,created_at,type,model_name,quota", *body]
    path.write_bytes(line_end.join(lines).encode("utf-8") + line_end.encode())
    return path


@pytest.mark.parametrize("piece_bytes", [80, 97, 500])
def test_a_ledger_read_in_pieces_equals_it_read_whole(tmp_path: Path, piece_bytes: int) -> None:
    path = write_ledger(tmp_path, BODY)
    whole = load_ledger(path, fixture_rules(), period().tz)
    pieces = load_in_pieces(path, fixture_rules(), period().tz, None, piece_bytes)
    assert pieces is not None
    assert len(whole.unreadable) == 42  # the file's problems
    assert whole.blank_rows == 7
    # the file's last but one line (a title and the header come before the body) is one
    assert int(whole.unreadable["line"].max()) == len(BODY) + 1
    pd.testing.assert_frame_equal(pieces.rows, whole.rows)
    pd.testing.assert_frame_equal(pieces.unreadable, whole.unreadable)
    for field in dataclasses.fields(whole):
        if field.name not in ("rows", "unreadable"):
            assert getattr(pieces, field.name) == getattr(whole, field.name), field.name


@pytest.mark.parametrize(
    "row",
    [
        '9,2026-10-07 12:00:00,consume,"gpt-4o\nmini",5',  # a value may hold a line end
        "9,2026-10-07 12:00:00,consume,gpt-4o,12.5",  # the decimal style is the file's
    ],
)
def test_a_ledger_pieces_could_read_otherwise_is_read_whole(tmp_path: Path, row: str) -> None:
    path = write_ledger(tmp_path, [*BODY, row], "\n")
    assert load_in_pieces(path, fixture_rules(), period().tz, None, 200) is None
