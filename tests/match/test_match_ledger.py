"""Matching logs against a ledger: one category per finding, the right amounts and words."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from match_helpers import make_logs, period, ts, write

from reconcile.books.ledger import load_ledger
from reconcile.core.findings import by_category, finalize
from reconcile.core.results import Ledger
from reconcile.core.schema import FINDING_DTYPES
from reconcile.core.tolerance import allowance
from reconcile.match.ledger import match_ledger
from reconcile.pricing.rules import Rules, Tolerance

RULES = Rules(currency={"CNY": Decimal("7.2")})


def ledger_of(tmp_path: Path, text: str, rules: Rules = RULES) -> Ledger:
    return load_ledger(write(tmp_path, "ledger.csv", text), rules, period().tz)


def match(logs: pd.DataFrame, ledger: Ledger, rules: Rules = RULES) -> pd.DataFrame:
    found = match_ledger(logs, ledger, period(), rules)
    assert dict(found.dtypes.astype(str)) == {**FINDING_DTYPES, "matched_on": "string"}
    return found


def cats(found: pd.DataFrame) -> list[str]:
    return sorted(found["category"].tolist())


LOGS = [
    {
        "id": 11,
        "created_at": "2026-10-05 10:00:00",
        "type": 2,
        "quota": 12500,
        "token_name": "ci",
        "model_name": "gpt-4o",
        "group": "vip",
        "request_id": "r11",
    },
    {"id": 12, "created_at": "2026-10-05 11:00:00", "type": 6, "quota": 300, "request_id": "r12"},
    {"id": 13, "created_at": "2026-10-06 09:00:00", "type": 1, "quota": 1_000_000},
    {"id": 14, "created_at": "2026-10-07 09:00:00", "type": 5, "quota": 0},
]
HEAD = "log_id,created_at,type,quota\n"
ALL_BOOKED = HEAD + (
    "11,2026-10-05 10:00:00,consume,12500\n"
    "12,2026-10-05 11:00:00,refund,300\n"
    "13,2026-10-06 09:00:00,topup,1000000\n"
)


def test_a_ledger_that_agrees_has_no_findings(tmp_path: Path) -> None:
    assert len(match(make_logs(LOGS), ledger_of(tmp_path, ALL_BOOKED))) == 0


def test_error_logs_are_not_expected_in_the_ledger(tmp_path: Path) -> None:
    found = match(make_logs(LOGS), ledger_of(tmp_path, ALL_BOOKED))
    assert 14 not in found["log_id"].tolist()


def test_missing_in_ledger_carries_the_log(tmp_path: Path) -> None:
    found = match(
        make_logs(LOGS), ledger_of(tmp_path, HEAD + "12,2026-10-05 11:00:00,refund,300\n")
    )
    assert cats(found) == ["missing_in_ledger", "missing_in_ledger"]
    row = found[found["log_id"] == 11].iloc[0]
    assert row["diff_quota"] == 12500
    assert row["log_quota"] == 12500
    assert pd.isna(row["ledger_quota"])
    assert pd.isna(row["ledger_line"])
    assert (row["type"], row["token_name"], row["model_name"], row["group"]) == (
        "consume",
        "ci",
        "gpt-4o",
        "vip",
    )
    assert row["request_id"] == "r11"
    assert row["created_at"] == "2026-10-05T10:00:00+08:00"
    assert row["severity"] == "error"
    assert row["source"] == "ledger"
    assert row["explanation"] == (
        "gateway log 11 (consume, 12,500 quota at 2026-10-05T10:00:00+08:00) has no ledger row"
    )


def test_missing_in_logs(tmp_path: Path) -> None:
    found = match(make_logs(LOGS), ledger_of(tmp_path, ALL_BOOKED + "99,2026-10-08,consume,777\n"))
    (row,) = found.itertuples()
    assert (row.category, row.log_id, row.ledger_line, row.diff_quota) == (
        "missing_in_logs",
        99,
        5,
        777,
    )
    assert pd.isna(row.log_quota)
    assert row.explanation == (
        "ledger line 5 books a consume of 777 quota for log 99, but the gateway has no such log "
        "in the period"
    )


@pytest.mark.parametrize(
    ("booked", "gateway", "verb", "sign"),
    [(12000, 12500, "charged", "+500"), (13000, 12500, "charged", "-500")],
)
def test_amount_mismatch_words_and_diff(
    tmp_path: Path, booked: int, gateway: int, verb: str, sign: str
) -> None:
    text = ALL_BOOKED.replace(",consume,12500", f",consume,{booked}")
    found = match(make_logs(LOGS), ledger_of(tmp_path, text))
    (row,) = found.itertuples()
    assert (row.category, row.log_id, row.ledger_line) == ("amount_mismatch", 11, 2)
    assert (row.log_quota, row.ledger_quota, row.diff_quota) == (gateway, booked, 500)
    assert row.explanation == (
        f"ledger line 2 has {booked:,} quota, gateway {verb} 12,500 for log 11 "
        f"({sign}; tolerance 1)"
    )


def test_refund_and_topup_mismatch_say_what_the_gateway_did(tmp_path: Path) -> None:
    text = ALL_BOOKED.replace("refund,300", "refund,200").replace("topup,1000000", "topup,1")
    found = match(make_logs(LOGS), ledger_of(tmp_path, text))
    words = dict(zip(found["log_id"], found["explanation"], strict=True))
    assert "gateway credited 1,000,000 for log 13" in words[13]
    assert "gateway refunded 300 for log 12" in words[12]


def test_tolerance_absolute_relative_and_rounding(tmp_path: Path) -> None:
    logs = make_logs([{"id": i, "quota": 100_000} for i in range(1, 5)])
    text = HEAD + (
        "1,2026-10-05,consume,100005\n"  # within quota = 5
        "2,2026-10-05,consume,100006\n"  # beyond
        "3,2026-10-05,consume,100100\n"  # within relative 0.001 of 100,100
        "4,2026-10-05,consume,100101\n"  # 101 > floor(0.001 * 100101) = 100
    )
    rules = RULES.model_copy(update={"tolerance": Tolerance(quota=5)})
    assert sorted(match(logs, ledger_of(tmp_path, text), rules)["log_id"]) == [2, 3, 4]
    rules = RULES.model_copy(update={"tolerance": Tolerance(quota=5, relative=Decimal("0.001"))})
    assert sorted(match(logs, ledger_of(tmp_path, text), rules)["log_id"]) == [4]


def test_allowance_is_exact() -> None:
    a = np.array([1000, 10**15], dtype=np.int64)
    b = np.array([999, 10**15 - 7], dtype=np.int64)
    tol = Tolerance(quota=1, relative=Decimal("0.0000000000000007"))
    assert allowance(a, b, tol, slack=np.zeros(2, np.int64)).tolist() == [1, 1]
    tol = Tolerance(quota=0, relative=Decimal("0.000000000000007"))
    assert allowance(a, b, tol, slack=np.array([3, 0], np.int64)).tolist() == [3, 7]


def test_currency_rounding_is_allowed_but_not_more(tmp_path: Path) -> None:
    # 12,500 quota = 0.18 CNY exactly; 2,000 quota = 0.0288 CNY, written 0.03 (2,083 quota).
    logs = make_logs(
        [{"id": 1, "quota": 12500}, {"id": 2, "quota": 2000}, {"id": 3, "quota": 2000}]
    )
    text = (
        "log_id,created_at,type,amount,currency\n"
        "1,2026-10-05,consume,0.18,CNY\n"
        "2,2026-10-05,consume,0.03,CNY\n"
        "3,2026-10-05,consume,0.04,CNY\n"
    )
    found = match(logs, ledger_of(tmp_path, text))
    (row,) = found.itertuples()
    assert (row.log_id, row.ledger_quota, row.diff_quota) == (3, 2778, 778)
    assert "tolerance 348" in row.explanation


def test_duplicates_first_row_matches_the_rest_are_duplicates(tmp_path: Path) -> None:
    text = ALL_BOOKED + "11,2026-10-05 10:00:00,consume,99\n11,2026-10-05 10:00:00,consume,12500\n"
    found = match(make_logs(LOGS), ledger_of(tmp_path, text))
    assert cats(found) == ["duplicate_ledger", "duplicate_ledger"]
    assert found["ledger_line"].tolist() == [5, 6]
    assert found["diff_quota"].tolist() == [99, 12500]
    assert found["log_quota"].tolist() == [12500, 12500]
    assert found["explanation"].iloc[0] == (
        "ledger line 5 claims log 11 again (first claimed on line 2); its 99 quota would be "
        "counted twice"
    )


def test_a_duplicate_is_not_also_an_amount_mismatch(tmp_path: Path) -> None:
    text = HEAD + "11,2026-10-05,consume,12500\n11,2026-10-05,consume,1\n"
    found = match(make_logs(LOGS[:1]), ledger_of(tmp_path, text))
    assert cats(found) == ["duplicate_ledger"]


def test_duplicates_follow_file_order_not_row_order(tmp_path: Path) -> None:
    ledger = ledger_of(tmp_path, HEAD + "11,2026-10-05,consume,1\n11,2026-10-05,consume,12500\n")
    ledger.rows = ledger.rows.iloc[::-1].reset_index(drop=True)
    found = match(make_logs(LOGS[:1]), ledger)
    assert sorted(zip(found["category"], found["ledger_line"], strict=True)) == [
        ("amount_mismatch", 2),
        ("duplicate_ledger", 3),
    ]


def test_out_of_period_once_not_also_missing_in_logs(tmp_path: Path) -> None:
    text = ALL_BOOKED + (
        "98,2026-09-30 23:59:00,consume,5\n"
        "99,2026-11-01 00:00:00,consume,6\n"  # the end is exclusive
        "97,2026-10-31 23:59:59,consume,7\n"
    )
    found = match(make_logs(LOGS), ledger_of(tmp_path, text))
    assert sorted(zip(found["category"], found["log_id"], found["diff_quota"], strict=True)) == [
        ("missing_in_logs", 97, 7),
        ("out_of_period", 98, 5),
        ("out_of_period", 99, 6),
    ]
    after = found[found["log_id"] == 99]["explanation"].iloc[0]
    assert after.startswith("ledger line 6 is dated 2026-11-01T00:00:00+08:00, after the period")


def test_out_of_period_row_claiming_an_in_period_log(tmp_path: Path) -> None:
    text = ALL_BOOKED.replace("11,2026-10-05 10:00:00", "11,2026-09-30 23:59:59")
    found = match(make_logs(LOGS), ledger_of(tmp_path, text))
    (row,) = found.itertuples()
    assert (row.category, row.log_id, row.diff_quota, row.log_quota) == (
        "out_of_period",
        11,
        12500,
        12500,
    )
    assert "yet the gateway logged log 11 at 2026-10-05T10:00:00+08:00, inside the period" in (
        row.explanation
    )


def test_type_mismatch_is_an_amount_mismatch_on_the_balance(tmp_path: Path) -> None:
    text = ALL_BOOKED.replace("refund,300", "consume,300").replace("topup,", "refund,")
    text += "14,2026-10-07 09:00:00,consume,10\n"
    found = match(make_logs(LOGS), ledger_of(tmp_path, text))
    got = sorted(zip(found["log_id"], found["category"], found["diff_quota"], strict=True))
    assert got == [
        (12, "amount_mismatch", 600),  # -300 booked, +300 refunded
        (13, "amount_mismatch", 0),  # refund vs topup: same direction, same amount
        (14, "amount_mismatch", 10),  # an error log moves nothing
    ]
    words = dict(zip(found["log_id"], found["explanation"], strict=True))
    assert words[12] == (
        "ledger line 3 books log 12 as a consume of 300 quota, but the gateway logged a refund "
        "of 300"
    )
    assert words[14] == (
        "ledger line 5 books log 14 as a consume of 10 quota, but it is an error log on the "
        "gateway (not spend)"
    )


def test_request_id_matching_per_row(tmp_path: Path) -> None:
    text = (
        "log_id,request_id,created_at,type,quota\n"
        ",r11,2026-10-05 10:00:00,consume,12000\n"
        "12,,2026-10-05 11:00:00,refund,300\n"
        ",r-unknown,2026-10-05,consume,5\n"
        ",r-unknown,2026-10-05,consume,6\n"
        ",r12,2026-10-05,refund,300\n"
    )
    found = match(make_logs(LOGS), ledger_of(tmp_path, text))
    got = sorted(
        zip(
            found["category"],
            found["ledger_line"].fillna(0),
            found["log_id"].fillna(0),
            strict=True,
        )
    )
    assert got == [
        ("amount_mismatch", 2, 11),
        ("duplicate_ledger", 5, 0),  # the same unknown request twice
        ("duplicate_ledger", 6, 12),  # r12 is log 12, already claimed on line 3
        ("missing_in_ledger", 0, 13),
        ("missing_in_logs", 4, 0),
    ]
    unknown = found[found["ledger_line"] == 4].iloc[0]
    assert unknown["request_id"] == "r-unknown"
    assert "for request r-unknown" in unknown["explanation"]


def test_request_ids_against_logs_without_them_fall_back_to_content(tmp_path: Path) -> None:
    logs = make_logs([{"id": 1, "quota": 5, "created_at": "2026-10-05 10:00:00"}])
    text = "request_id,created_at,type,quota\nr1,2026-10-05 10:00:00,consume,5\n"
    assert cats(match(logs, ledger_of(tmp_path, text))) == []
    late = "request_id,created_at,type,quota\nr1,2026-10-05,consume,5\n"
    found = match(logs, ledger_of(tmp_path, late))
    assert cats(found) == ["missing_in_ledger", "missing_in_logs"]
    row = found[found["category"] == "missing_in_logs"].iloc[0]
    assert row["matched_on"] == "tolerant"
    assert "an older server?" in row["explanation"]


def test_a_row_to_pair_by_content_when_every_log_is_booked_is_missing_in_logs(
    tmp_path: Path,
) -> None:
    # Regression: with no log left to pair, pairing by content raised IndexError (exit 70)
    logs = make_logs([{"id": 1, "quota": 5, "created_at": "2026-10-05 10:00:00"}])
    text = (
        "log_id,request_id,created_at,type,quota\n"
        "1,,2026-10-05 10:00:00,consume,5\n"
        ",r9,2026-10-06 10:00:00,consume,7\n"
    )
    found = match(logs, ledger_of(tmp_path, text))
    assert cats(found) == ["missing_in_logs"]
    assert found.iloc[0]["ledger_line"] == 3


def test_logs_claimed_by_unreadable_rows_are_not_missing(tmp_path: Path) -> None:
    text = ALL_BOOKED.replace("11,2026-10-05 10:00:00,consume,12500", "11,2026-10-05,consume,lots")
    ledger = ledger_of(tmp_path, text)
    assert ledger.unreadable["log_id"].tolist() == [11]
    assert len(match(make_logs(LOGS), ledger)) == 0


def test_empty_sides(tmp_path: Path) -> None:
    empty_ledger = ledger_of(tmp_path, HEAD)
    assert cats(match(make_logs(LOGS), empty_ledger)) == ["missing_in_ledger"] * 3
    no_logs = make_logs([])
    assert cats(match(no_logs, ledger_of(tmp_path, ALL_BOOKED))) == ["missing_in_logs"] * 3
    assert len(match(no_logs, empty_ledger)) == 0


def test_findings_finalize_and_count(tmp_path: Path) -> None:
    text = ALL_BOOKED.replace("12500", "12000") + "99,2026-10-08,consume,777\n"
    found = match(make_logs(LOGS), ledger_of(tmp_path, text))
    final = finalize([found], RULES)
    counts = by_category(final)
    assert counts["amount_mismatch"] == {"count": 1, "quota": 500}
    assert counts["missing_in_logs"] == {"count": 1, "quota": 777}


def test_planted_discrepancies_in_a_larger_ledger(tmp_path: Path) -> None:
    """20,000 logs with planted problems of each kind: counts and quotas come out exact."""
    rng = np.random.default_rng(3)
    n = 20_000
    start = ts("2026-10-01 00:00:00")
    ids = np.arange(1, n + 1) * 7
    types = rng.choice([2, 6, 1, 5], n, p=[0.9, 0.04, 0.02, 0.04])
    quota = np.where(types == 5, 0, rng.integers(1, 10**6, n))
    times = start + rng.integers(0, 30 * 86400, n)
    logs = make_logs(
        [
            {"id": int(i), "type": int(t), "quota": int(q), "created_at": int(c)}
            for i, t, q, c in zip(ids, types, quota, times, strict=True)
        ]
    )
    spend = np.flatnonzero(types != 5)
    order = rng.permutation(spend)
    dropped, changed, doubled = order[:150], order[150:350], order[350:420]
    keep = np.setdiff1d(spend, dropped)
    booked = quota.copy()
    booked[changed] += rng.integers(2, 1000, len(changed))
    names = {2: "consume", 6: "refund", 1: "topup"}
    lines = [f"{ids[k]},{times[k]},{names[int(types[k])]},{booked[k]}" for k in keep]
    lines += [f"{ids[k]},{times[k]},{names[int(types[k])]},{booked[k]}" for k in doubled]
    lines += [f"{10**7 + k},{start + 5},consume,{k + 1}" for k in range(90)]
    lines += [f"{2 * 10**7 + k},{start - 60},consume,3" for k in range(40)]
    rng.shuffle(lines)
    found = match(logs, ledger_of(tmp_path, HEAD + "\n".join(lines) + "\n"))
    counts = by_category(finalize([found], RULES))
    assert counts["missing_in_ledger"] == {"count": 150, "quota": int(quota[dropped].sum())}
    assert counts["amount_mismatch"] == {
        "count": 200,
        "quota": int((booked[changed] - quota[changed]).sum()),
    }
    assert counts["duplicate_ledger"]["count"] == 70
    assert counts["missing_in_logs"] == {"count": 90, "quota": sum(range(1, 91))}
    assert counts["out_of_period"] == {"count": 40, "quota": 120}


def test_a_pricing_finding_shows_the_ledger_row_that_books_its_log(tmp_path: Path) -> None:
    # The reviewer sees a pricing finding beside the books' row for the same log: the first
    # row that books it (line order), with its quota; a log the books lack shows none.
    from reconcile.core.logstore import FrameStore
    from reconcile.engines import WholeRunner
    from reconcile.pricing.rules import parse_rules

    rules = parse_rules("quota_per_unit = 500000\n")  # no model priced: every log unpriced
    logs = make_logs(
        [{"id": 1, "quota": 100, "model_name": "m"}, {"id": 2, "quota": 7, "model_name": "m"}]
    )
    text = (
        "log_id,created_at,type,model_name,quota\n"
        "9,2026-10-05T10:00:00+08:00,consume,m,5\n"
        "1,2026-10-05T10:00:00+08:00,consume,m,100\n"
        "1,2026-10-05T10:00:01+08:00,consume,m,90\n"
    )
    ledger = load_ledger(write(tmp_path, "ledger.csv", text), rules, period().tz)
    staged = WholeRunner().stage(FrameStore(logs, period()), ledger, None, rules)
    found = finalize(staged.frames, rules, ledger)
    pricing = found[found["source"] == "pricing"].set_index("log_id")
    assert pricing.loc[1, "ledger_line"] == 3
    assert pricing.loc[1, "ledger_quota"] == 100
    assert pd.isna(pricing.loc[2, "ledger_line"])
    assert pd.isna(pricing.loc[2, "ledger_quota"])
