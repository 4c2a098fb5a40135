"""Ledgers without usable ids: pairing rows with logs by content, closest time first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from match_helpers import make_logs, period, write

from reconcile.books.ledger import load_ledger
from reconcile.core.results import Ledger
from reconcile.core.schema import FINDING_DTYPES
from reconcile.errors import InputError
from reconcile.match import tolerant
from reconcile.match.ledger import id_warnings, match_ledger
from reconcile.match.tolerant import Content, pair
from reconcile.pricing.rules import Rules, Tolerance, load_rules

RULES = Rules()
HEAD = "created_at,type,token_name,model_name,prompt_tokens,completion_tokens,quota\n"


def log(
    i: int, at: str, quota: int = 100, prompt: int = 1000, **extra: object
) -> dict[str, object]:
    return {
        "id": i,
        "created_at": f"2026-10-05 {at}",
        "type": 2,
        "token_name": "ci",
        "model_name": "gpt-4o",
        "prompt_tokens": prompt,
        "completion_tokens": 50,
        "quota": quota,
        **extra,
    }


def row(at: str, quota: int = 100, prompt: int | str = 1000, completion: int | str = 50) -> str:
    return f"2026-10-05 {at},consume,ci,gpt-4o,{prompt},{completion},{quota}\n"


def ledger_of(tmp_path: Path, text: str, rules: Rules = RULES) -> Ledger:
    return load_ledger(write(tmp_path, "ledger.csv", text), rules, period().tz)


def match(
    logs: pd.DataFrame, ledger: Ledger, rules: Rules = RULES, id_scheme: str = "stable"
) -> pd.DataFrame:
    found = match_ledger(logs, ledger, period(), rules, id_scheme)
    assert dict(found.dtypes.astype(str)) == {**FINDING_DTYPES, "matched_on": "string"}
    return found


def cats(found: pd.DataFrame) -> list[tuple[str, object, object]]:
    """(category, ledger line, log id) per finding, sorted."""
    out = [
        (str(c), None if pd.isna(ln) else int(ln), None if pd.isna(i) else int(i))
        for c, ln, i in zip(found["category"], found["ledger_line"], found["log_id"], strict=True)
    ]
    return sorted(out, key=str)


def test_rows_without_ids_pair_with_logs_a_few_seconds_later(tmp_path: Path) -> None:
    logs = make_logs([log(1, "10:00:03"), log(2, "10:05:00", prompt=7)])
    ledger = ledger_of(tmp_path, HEAD + row("10:00:00") + row("10:04:59", prompt=7))
    assert ledger.match_key == "content"
    assert cats(match(logs, ledger)) == []


def test_the_window_is_asymmetric_and_set_in_the_rules(tmp_path: Path) -> None:
    logs = make_logs([log(1, "10:00:06"), log(2, "10:10:00"), log(3, "10:20:00")])
    text = HEAD + row("10:00:00") + row("10:10:01") + row("10:20:02")
    found = match(logs, ledger_of(tmp_path, text))
    # 6 s after the row: too late for the default 5 s; 1 s before: fine; 2 s before: too early
    assert cats(found) == [
        ("missing_in_ledger", None, 1),
        ("missing_in_ledger", None, 3),
        ("missing_in_logs", 2, None),
        ("missing_in_logs", 4, None),
    ]
    assert "1 s before to 5 s after" in found["explanation"].iloc[-1]
    wide = Rules(tolerance=Tolerance(seconds=10))
    assert cats(match(logs, ledger_of(tmp_path, text), wide)) == [
        ("missing_in_ledger", None, 3),
        ("missing_in_logs", 4, None),
    ]


def test_a_wrong_amount_is_an_amount_mismatch_not_a_missing_pair(tmp_path: Path) -> None:
    logs = make_logs([log(1, "10:00:02", quota=150)])
    found = match(logs, ledger_of(tmp_path, HEAD + row("10:00:00", quota=100)))
    assert cats(found) == [("amount_mismatch", 2, 1)]
    assert found["matched_on"].tolist() == ["tolerant"]
    assert found["diff_quota"].tolist() == [50]


def test_without_token_counts_the_amount_is_a_pairing_key(tmp_path: Path) -> None:
    logs = make_logs([log(1, "10:00:01", quota=150), log(2, "10:00:02", quota=100)])
    found = match(logs, ledger_of(tmp_path, HEAD + row("10:00:00", 100, "", "")))
    # the closer log has another amount: the row pairs with the one whose amount agrees
    assert cats(found) == [("missing_in_ledger", None, 1)]


def test_closest_time_first_not_first_row_first(tmp_path: Path) -> None:
    # Row order would give line 2 the log at :02 (2 s) and leave line 3 the log at :03 (1 s);
    # closest first pairs line 3 with :02 (0 s) and line 2 with :03 (3 s).
    logs = make_logs([log(1, "10:00:02", quota=20), log(2, "10:00:03", quota=30)])
    text = HEAD + row("10:00:00", quota=30) + row("10:00:02", quota=20)
    assert cats(match(logs, ledger_of(tmp_path, text))) == []


def test_equally_good_logs_with_different_amounts_make_the_row_ambiguous(tmp_path: Path) -> None:
    logs = make_logs([log(1, "10:00:01", quota=110), log(2, "10:00:01", quota=120)])
    found = match(logs, ledger_of(tmp_path, HEAD + row("10:00:00", quota=100)))
    assert cats(found) == [("ambiguous_match", 2, None)]  # neither log is called missing
    text = found["explanation"].iloc[0]
    assert "log 1 (110)" in text
    assert "log 2 (120)" in text
    assert found["severity"].tolist() == ["error"]  # whichever log it is, the amount is off
    assert found["diff_quota"].tolist() == [10]
    assert "differ by at least 10" in text
    assert found["matched_on"].tolist() == ["tolerant"]
    # an amount that agrees with one of them settles it
    settled = match(logs, ledger_of(tmp_path, HEAD + row("10:00:00", quota=120)))
    assert cats(settled) == [("missing_in_ledger", None, 1)]


def test_identical_calls_are_interchangeable_and_an_extra_row_is_a_duplicate(
    tmp_path: Path,
) -> None:
    logs = make_logs([log(1, "10:00:01"), log(2, "10:00:01")])
    assert cats(match(logs, ledger_of(tmp_path, HEAD + row("10:00:00") * 2))) == []
    found = match(logs, ledger_of(tmp_path, HEAD + row("10:00:00") * 3))
    assert cats(found) == [("duplicate_ledger", 4, 1)]
    assert "claims log 1 again (first claimed on line 2)" in found["explanation"].iloc[0]


def test_ties_are_deterministic_whatever_the_row_order(tmp_path: Path) -> None:
    logs = make_logs([log(1, "10:00:01", quota=10), log(2, "10:00:04", quota=20)])
    a = HEAD + row("10:00:00", quota=10) + row("10:00:03", quota=25)
    b = HEAD + row("10:00:03", quota=25) + row("10:00:00", quota=10)
    first = match(logs, ledger_of(tmp_path, a))
    second = match(logs, ledger_of(tmp_path, b))
    assert first["log_id"].tolist() == second["log_id"].tolist() == [2]
    assert first["diff_quota"].tolist() == second["diff_quota"].tolist() == [5]


def test_log_ids_are_not_trusted_when_the_gateway_numbers_them_by_position(
    tmp_path: Path,
) -> None:
    # Position ids: the ledger's 1 and 2 were positions on some page, not these logs.
    logs = make_logs([log(2, "10:00:01", quota=10), log(1, "10:00:30", quota=20)])
    text = (
        "log_id,created_at,type,token_name,model_name,prompt_tokens,completion_tokens,quota\n"
        "1,2026-10-05 10:00:00,consume,ci,gpt-4o,1000,50,10\n"
        "2,2026-10-05 10:00:29,consume,ci,gpt-4o,1000,50,20\n"
    )
    ledger = ledger_of(tmp_path, text)
    trusted = match(logs, ledger, id_scheme="stable")  # every pair is wrong
    assert cats(trusted) == [("amount_mismatch", 2, 1), ("amount_mismatch", 3, 2)]
    found = match(logs, ledger, id_scheme="position")
    assert cats(found) == []
    requests = bool(logs["request_id"].notna().any())
    [warning] = id_warnings(ledger, "position", requests)
    assert "numbered by position" in warning
    assert "2 ledger row(s)" in warning
    assert id_warnings(ledger, "stable", requests) == []


def test_every_finding_says_which_key_matched_it(tmp_path: Path) -> None:
    logs = make_logs(
        [
            log(1, "10:00:00", quota=10, request_id="r1"),
            log(2, "10:01:00", quota=10, request_id="r2"),
            log(3, "10:02:00", quota=10, request_id="r3"),
        ]
    )
    text = (
        "log_id,request_id,created_at,type,token_name,model_name,"
        "prompt_tokens,completion_tokens,quota\n"
        "1,,2026-10-05 10:00:00,consume,ci,gpt-4o,1000,50,15\n"
        ",r2,2026-10-05 10:01:00,consume,ci,gpt-4o,1000,50,12\n"
        ",,2026-10-05 10:02:00,consume,ci,gpt-4o,1000,50,13\n"
    )
    found = match(logs, ledger_of(tmp_path, text))
    assert found["category"].tolist() == ["amount_mismatch"] * 3
    by_line = dict(zip(found["ledger_line"], found["matched_on"], strict=True))
    assert by_line == {2: "log_id", 3: "request_id", 4: "tolerant"}


# --------------------------------------------------------------------------- the greedy


def _naive(rows: Content, logs: Content, tol: Tolerance) -> list[int]:
    """Reference: every pair ranked, taken one by one (no ambiguity in the data given)."""
    pairs = []
    for r in range(len(rows.time)):
        for g in range(len(logs.time)):
            same = all(rk[r] == lk[g] for rk, lk in zip(rows.keys, logs.keys, strict=True))
            if not same or not (rows.tokens[r] and rows.prompt[r] == logs.prompt[g]):
                continue
            dt = int(logs.time[g] - rows.time[r])
            if -min(1, tol.seconds) <= dt <= tol.seconds:
                pairs.append((abs(dt), dt < 0, rows.quota[r] != logs.quota[g], r, g))
    pos = [-1] * len(rows.time)
    used: set[int] = set()
    for *_, r, g in sorted(pairs):
        if pos[r] < 0 and g not in used:
            pos[r] = g
            used.add(g)
    return pos


def _side(data: list[tuple[int, int, int]]) -> Content:
    n = len(data)
    return Content(
        # a second key with a huge range: packed keys must fall back to factorising
        keys=[
            np.array([d[0] for d in data], dtype=np.int64),
            np.array([d[0] % 2 * 2**45 for d in data], dtype=np.int64),
        ],
        prompt=np.zeros(n, dtype=np.int64),
        completion=np.zeros(n, dtype=np.int64),
        tokens=np.ones(n, dtype=bool),
        time=np.array([d[1] for d in data], dtype=np.int64),
        quota=np.array([d[2] for d in data], dtype=np.int64),
    )


FAR = 2**61  # times this far apart cannot be packed with the key: they are ranked instead
times = st.one_of(st.integers(0, 40), st.integers(FAR, FAR + 40))
calls = st.lists(st.tuples(st.integers(0, 2), times, st.just(7)), max_size=25)


@settings(max_examples=150, deadline=None)
@given(rows=calls, logs=calls, seconds=st.integers(0, 6), chunk=st.sampled_from([1, 5, 10**6]))
def test_vectorised_pairing_equals_the_sequential_greedy(
    rows: list[tuple[int, int, int]], logs: list[tuple[int, int, int]], seconds: int, chunk: int
) -> None:
    tol = Tolerance(seconds=seconds)
    r, g = _side(rows), _side(logs)
    saved = tolerant.CHUNK_PAIRS
    tolerant.CHUNK_PAIRS = chunk  # candidates built a few at a time give the same pairs
    try:
        got = pair(r, g, np.zeros(len(rows), dtype=np.int64), tol)
    finally:
        tolerant.CHUNK_PAIRS = saved
    assert got.pos.tolist() == _naive(r, g, tol)
    assert not got.ambiguous.any()  # equal amounts: candidates are interchangeable


def test_the_window_is_read_from_the_rules_file(tmp_path: Path) -> None:
    good = write(tmp_path, "rules.toml", "[tolerance]\nseconds = 12\n")
    assert load_rules(good).tolerance.seconds == 12
    assert load_rules(write(tmp_path, "default.toml", "")).tolerance.seconds == 5
    for text, message in (
        ("[tolerance]\nseconds = 2.5\n", "whole number of seconds"),
        ("[tolerance]\nseconds = -1\n", ">= 0"),
        ("[tolerance]\nseconds = 100000\n", "at most 86400"),
    ):
        with pytest.raises(InputError, match=message) as err:
            load_rules(write(tmp_path, "bad.toml", text))
        assert err.value.field == "tolerance.seconds"
        assert err.value.line == 2
