"""Reading ledger CSVs as finance systems and Excel write them, without losing a row."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from match_helpers import TZ, ts, write

from reconcile.books.ledger import load_ledger
from reconcile.books.problems import unreadable_findings
from reconcile.core.money import amount_to_quota
from reconcile.core.schema import UNREADABLE_ROW
from reconcile.errors import InputError
from reconcile.pricing.rules import ColumnMap, Rules

SH = ZoneInfo(TZ)
RULES = Rules(currency={"CNY": Decimal("7.2"), "EUR": Decimal("0.9")})
HEAD = "log_id,created_at,type,quota\n"


def load(path: Path, rules: Rules = RULES, profile: Path | None = None, tz: ZoneInfo = SH):
    return load_ledger(path, rules, tz, profile)


def reasons(ledger) -> list[tuple[int, str, str]]:
    return [(int(r.line), str(r.field), str(r.reason)) for r in ledger.unreadable.itertuples()]


# --------------------------------------------------------------------------- file shape


def test_excel_bom_semicolons_crlf_and_european_thousands(tmp_path: Path) -> None:
    text = '\ufefflog_id;created_at;type;quota\r\n7;2026-10-05 10:00:00;consume;"1.234.567"\r\n'
    ledger = load(write(tmp_path, "l.csv", text))
    assert ledger.delimiter == ";"
    assert ledger.encoding == "utf-8-sig"
    assert ledger.rows["quota"].tolist() == [1234567]
    assert ledger.rows["line"].tolist() == [2]
    assert ledger.columns["log_id"] == "log_id"  # the BOM is not part of the first name


@pytest.mark.parametrize("sep", ["\t", "|", ";", ","])
def test_separator_is_sniffed_from_the_header(tmp_path: Path, sep: str) -> None:
    text = sep.join(["log_id", "created_at", "type", "quota"]) + "\n"
    text += sep.join(["1", "2026-10-05 10:00:00", "consume", "5"]) + "\n"
    ledger = load(write(tmp_path, "l.csv", text))
    assert ledger.delimiter == sep
    assert ledger.rows["quota"].tolist() == [5]


def test_excel_sep_hint_and_title_lines_above_the_header(tmp_path: Path) -> None:
    text = (
        "sep=;\n"
        "Ledger export October 2026;;;\n"
        "\n"
        "log_id;created_at;type;quota\n"
        "1;2026-10-05 10:00:00;consume;5\n"
        "x;2026-10-05 10:00:00;consume;5\n"
    )
    ledger = load(write(tmp_path, "l.csv", text))
    assert ledger.rows["line"].tolist() == [5]
    assert reasons(ledger) == [(6, "log_id", "'x' is not a log id (a whole number)")]
    assert any("1 line(s) above the header (line 4)" in w for w in ledger.warnings)


def test_line_numbers_stay_physical_after_a_quoted_newline(tmp_path: Path) -> None:
    text = HEAD.replace("quota", "quota,note") + (
        '1,2026-10-05 10:00:00,consume,5,"first\nsecond\nthird"\n'
        "2,2026-10-05 10:00:00,consume,oops,\n"
    )
    ledger = load(write(tmp_path, "l.csv", text))
    assert ledger.rows["line"].tolist() == [2]
    assert reasons(ledger) == [(5, "quota", "'oops' is not a number")]


def test_a_stray_quote_inside_a_value_does_not_shift_lines(tmp_path: Path) -> None:
    # `5" screen` is not a quoted field: the fast quote scan is wrong here and the reader
    # falls back to the csv module, which must still number every row correctly.
    text = HEAD.replace("quota", "model_name,quota") + (
        '1,2026-10-05 10:00:00,consume,5" screen,10\n'
        "2,2026-10-05 10:00:00,consume,gpt-4o,20\n"
        "3,2026-10-05 10:00:00,consume,gpt-4o,bad\n"
    )
    ledger = load(write(tmp_path, "l.csv", text))
    assert ledger.rows["line"].tolist() == [2, 3]
    assert ledger.rows["model_name"].tolist() == ['5" screen', "gpt-4o"]
    assert [r[0] for r in reasons(ledger)] == [4]


def test_an_unclosed_quote_costs_one_line_not_the_rest_of_the_file(tmp_path: Path) -> None:
    rows = [f"{i},2026-10-05 10:00:00,consume,gpt-4o,{i}" for i in range(1, 201)]
    rows[4] = '5,2026-10-05 10:00:00,consume,"gpt-4o,5'  # line 6: the quote never closes
    text = HEAD.replace("quota", "model_name,quota") + "\n".join(rows) + "\n"
    ledger = load(write(tmp_path, "l.csv", text))
    assert len(ledger.rows) == 199
    assert ledger.rows["line"].tolist() == [n for n in range(2, 202) if n != 6]
    assert ledger.rows["quota"].sum() == sum(range(1, 201)) - 5
    [(line, fld, reason)] = reasons(ledger)
    assert (line, fld) == (6, "(row)")
    assert "unclosed quote" in reason
    assert "line 201" in reason  # where the value would have run on to
    assert ledger.unreadable["raw"].tolist() == [rows[4]]


def test_two_unclosed_quotes_each_cost_their_own_line(tmp_path: Path) -> None:
    # The second stray quote would close the first: lines 3-5 would read as one long row.
    text = HEAD.replace("quota", "model_name,quota") + (
        "1,2026-10-05 10:00:00,consume,gpt-4o,1\n"
        '2,2026-10-05 10:00:00,consume,"gpt-4o,2\n'
        "3,2026-10-05 10:00:00,consume,gpt-4o,3\n"
        '4,2026-10-05 10:00:00,consume,"gpt-4o,4\n'
        "5,2026-10-05 10:00:00,consume,gpt-4o,5\n"
    )
    ledger = load(write(tmp_path, "l.csv", text))
    assert ledger.rows["log_id"].tolist() == [1, 3, 5]
    assert [r[:2] for r in reasons(ledger)] == [(3, "(row)"), (5, "(row)")]


def test_a_quoted_newline_with_the_right_fields_is_still_one_row(tmp_path: Path) -> None:
    text = HEAD.replace("quota", "note,quota") + (
        '1,2026-10-05 10:00:00,consume,"a note\nover two lines",5\n'
        '2,2026-10-05 10:00:00,consume,"x",6\n'
    )
    ledger = load(write(tmp_path, "l.csv", text))
    assert ledger.rows["line"].tolist() == [2, 4]
    assert len(ledger.unreadable) == 0


def test_short_rows_are_padded_and_long_rows_reported(tmp_path: Path) -> None:
    text = HEAD.replace("quota", "quota,note") + (
        "1,2026-10-05 10:00:00,consume,5\n"  # no note: fine
        "2,2026-10-05 10:00:00,consume\n"  # no quota: unreadable
        "3,2026-10-05 10:00:00,consume,1,234,note\n"  # unquoted thousands: 7 fields
        "4,2026-10-05 10:00:00,consume,6,note,,\n"  # trailing empty fields: fine
    )
    ledger = load(write(tmp_path, "l.csv", text))
    assert ledger.rows["log_id"].tolist() == [1, 4]
    got = reasons(ledger)
    assert got[0] == (3, "quota", "missing quota")
    assert got[1][:2] == (4, "(row)")
    assert "6 fields where the header has 5" in got[1][2]


def test_data_lines_ending_in_a_separator_the_header_lacks(tmp_path: Path) -> None:
    rows = [f"{i},2026-10-05 10:00:00,consume,{i}," for i in range(1, 41)]
    rows[9] = "10,2026-10-05 10:00:00,consume,10,stray"
    rows[19] = "20,2026-10-05 10:00:00,consume,20"
    ledger = load(write(tmp_path, "l.csv", HEAD + "\n".join(rows) + "\n"))
    assert len(ledger.rows) == 39
    assert ledger.rows["quota"].sum() == sum(range(1, 41)) - 10
    assert reasons(ledger) == [
        (11, "(row)", "5 fields where the header has 4: an unquoted separator inside a value?")
    ]


def test_blank_and_padding_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    text = HEAD + "1,2026-10-05 10:00:00,consume,5\n\n,,,\n  \n2,2026-10-05 10:00:00,consume,6\n"
    ledger = load(write(tmp_path, "l.csv", text))
    assert ledger.rows["line"].tolist() == [2, 6]
    assert ledger.blank_rows == 3
    assert len(ledger.unreadable) == 0


def test_utf16_unicode_text_export(tmp_path: Path) -> None:
    text = (
        "log_id\tcreated_at\ttype\tmodel_name\tquota\r\n1\t2026-10-05 10:00:00\t消费\t模型\t5\r\n"
    )
    ledger = load(write(tmp_path, "l.csv", text.encode("utf-16")))
    assert ledger.encoding == "utf-16"
    assert ledger.rows["model_name"].tolist() == ["模型"]
    assert ledger.rows["type"].tolist() == [2]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_read_not_called_binary(tmp_path: Path, codec: str) -> None:
    text = "log_id,created_at,type,model_name,quota\r\n1,2026-10-05 10:00:00,消费,模型,5\r\n"
    ledger = load(write(tmp_path, "l.csv", text.encode(codec)))
    assert ledger.encoding == codec
    assert ledger.rows["model_name"].tolist() == ["模型"]
    assert f"ledger: read as {codec}" in ledger.warnings


def test_gbk_is_detected_and_can_be_declared(tmp_path: Path) -> None:
    text = "log_id,created_at,type,model_name,quota\n1,2026-10-05 10:00:00,充值,通义千问,5\n"
    path = write(tmp_path, "l.csv", text.encode("gbk"))
    assert load(path).rows["model_name"].tolist() == ["通义千问"]
    declared = load(path, RULES.model_copy(update={"ledger": ColumnMap(encoding="gbk")}))
    assert declared.encoding == "gbk"
    assert declared.rows["type"].tolist() == [1]


def test_damaged_utf8_is_an_error_naming_the_line_not_a_silent_gbk_read(tmp_path: Path) -> None:
    good = "log_id,created_at,type,model_name,quota\n" + "1,2026-10-05,consume,模型,5\n" * 3
    raw = good.encode("utf-8") + b"4,2026-10-05,consume,\xff\xfe,5\n"
    with pytest.raises(InputError) as err:
        load(write(tmp_path, "l.csv", raw))
    assert err.value.line == 5
    assert err.value.field == "encoding"
    assert "l.csv:5: encoding:" in str(err.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\xef\xbb\xbf \r\n", "the file is empty"),
        (b"PK\x03\x04rest-of-a-zip", "Excel workbook"),
        (b"\x00\x01\x02binary", "binary data"),
    ],
)
def test_files_that_are_not_csv(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        load(write(tmp_path, "bad.csv", content))
    assert err.value.file is not None
    assert err.value.file.endswith("bad.csv")


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read file") as err:
        load(tmp_path / "nope.csv")
    assert str(tmp_path / "nope.csv") in str(err.value)


# --------------------------------------------------------------------------- columns


def test_column_names_are_forgiving(tmp_path: Path) -> None:
    text = " Log ID ,CREATED-AT,Type,Quota,Model_Name\n1,2026-10-05 10:00:00,consume,5,gpt-4o\n"
    ledger = load(write(tmp_path, "l.csv", text))
    assert ledger.rows["model_name"].tolist() == ["gpt-4o"]
    assert ledger.columns["log_id"] == "Log ID"


def test_rules_mapping_renames_and_unknown_columns_are_listed(tmp_path: Path) -> None:
    text = "Txn,Ref,When,Kind,Units,Dept\nT1,1,2026-10-05 10:00:00,consume,5,ops\n"
    rules = RULES.model_copy(
        update={
            "ledger": ColumnMap(
                columns={"ref": "log_id", "WHEN": "created_at", "kind": "type", "Units": "quota"}
            )
        }
    )
    ledger = load(write(tmp_path, "l.csv", text), rules)
    assert ledger.rows["log_id"].tolist() == [1]
    assert ledger.ignored_columns == ["Txn", "Dept"]
    assert "ledger: columns not used: Txn, Dept" in ledger.warnings


def test_profile_overrides_the_rules_mapping(tmp_path: Path) -> None:
    text = "Ref;When;Kind;Betrag\n1;2026-10-05 10:00:00;consume;1.234,50\n"
    profile = write(
        tmp_path,
        "p.toml",
        'currency = "EUR"\ndecimal = ","\n[columns]\nRef = "log_id"\nWhen = "created_at"\n'
        'Kind = "type"\nBetrag = "amount"\n',
    )
    ledger = load(write(tmp_path, "l.csv", text), profile=profile)
    assert ledger.rows["quota"].tolist() == [
        amount_to_quota(Decimal("1234.50"), Decimal(500000), Decimal("0.9"))
    ]
    assert ledger.currency == "EUR"


def test_missing_required_column_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "l.csv", "log_id,created_at,quota\n1,2026-10-05,5\n")
    with pytest.raises(InputError) as err:
        load(path)
    assert (err.value.line, err.value.field) == (1, "type")
    assert str(err.value).startswith(f"{path}:1: type: no type column")


def test_header_line_is_reported_after_a_title(tmp_path: Path) -> None:
    path = write(tmp_path, "l.csv", "Report\nlog_id,created_at,quota\n1,2026-10-05,5\n")
    with pytest.raises(InputError) as err:
        load(path)
    assert (err.value.line, err.value.field) == (2, "type")


@pytest.mark.parametrize(
    ("mapping", "field"),
    [
        ({"Ref": "ledger_id"}, "ledger.columns.Ref"),
    ],
)
def test_mapping_to_an_unknown_column_is_an_error(tmp_path: Path, mapping, field) -> None:
    rules = RULES.model_copy(update={"ledger": ColumnMap(columns=mapping)})
    with pytest.raises(InputError) as err:
        load(write(tmp_path, "l.csv", HEAD + "1,2026-10-05,consume,5\n"), rules)
    assert err.value.field == field


def test_two_columns_for_one_name_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path, "l.csv", "log_id,Log ID,created_at,type,quota\n1,1,2026-10-05,consume,5\n"
    )
    with pytest.raises(InputError, match="both map to 'log_id'") as err:
        load(path)
    assert (err.value.line, err.value.field) == (1, "log_id")


def test_profile_delimiter_and_encoding_settings(tmp_path: Path) -> None:
    # The header has as many ';' as tabs, so sniffing would pick ';': the profile says tab.
    text = "log_id\tcreated_at\ttype\tquota;in;units;only\tnote\n1\t2026-10-05\tconsume\t5\tcafé\n"
    path = write(tmp_path, "l.csv", text.encode("cp1252"))
    profile = write(
        tmp_path,
        "p.toml",
        'delimiter = "tab"\nencoding = "cp1252"\n[columns]\n"quota;in;units;only" = "quota"\n',
    )
    with pytest.raises(InputError):
        load(path)
    ledger = load(path, profile=profile)
    assert ledger.delimiter == "\t"
    assert ledger.encoding == "cp1252"
    assert ledger.rows["quota"].tolist() == [5]


@pytest.mark.parametrize(
    ("setting", "field"),
    [('delimiter = "::"', "delimiter"), ('encoding = "klingon"', "encoding")],
)
def test_bad_reading_settings(tmp_path: Path, setting: str, field: str) -> None:
    profile = write(tmp_path, "p.toml", setting + "\n")
    with pytest.raises(InputError) as err:
        load(write(tmp_path, "l.csv", HEAD + "1,2026-10-05,consume,5\n"), profile=profile)
    assert err.value.field == field


def test_bad_profile_names_the_profile(tmp_path: Path) -> None:
    profile = write(tmp_path, "p.toml", 'decimal = ";"\n')
    with pytest.raises(InputError) as err:
        load(write(tmp_path, "l.csv", HEAD + "1,2026-10-05,consume,5\n"), profile=profile)
    assert err.value.file == str(profile)
    assert err.value.field == "decimal"


# --------------------------------------------------------------------------- amounts


def _amount_ledger(tmp_path: Path, cells: list[str], *, sep: str = ",", types=None) -> object:
    types = types or ["consume"] * len(cells)
    lines = [sep.join(["log_id", "created_at", "type", "amount"])]
    for i, (cell, kind) in enumerate(zip(cells, types, strict=True), start=1):
        quoted = f'"{cell}"' if sep in cell else cell
        lines.append(sep.join([str(i), "2026-10-05 10:00:00", kind, quoted]))
    return load(write(tmp_path, "l.csv", "\n".join(lines) + "\n"))


@pytest.mark.parametrize(
    ("cell", "amount", "currency"),
    [
        ("$1,234.50", "1234.50", "USD"),
        ("US$ 12.5", "12.5", "USD"),
        ("12.50 USD", "12.50", "USD"),
        ("usd 0.000002", "0.000002", "USD"),
        ("¥0.18", "0.18", "CNY"),
        ("￥1,000.00", "1000.00", "CNY"),
        ("CN¥72", "72", "CNY"),
        ("RMB 10.368", "10.368", "CNY"),
        ("10.37元", "10.37", "CNY"),
        ("€12.50", "12.50", "EUR"),
        ("1'234.50 EUR", "1234.50", "EUR"),
        ("$ 1 234.50", "1234.50", "USD"),
    ],
)
def test_amounts_with_signs_and_separators_are_exact(
    tmp_path: Path, cell: str, amount: str, currency: str
) -> None:
    ledger = _amount_ledger(tmp_path, [cell])
    rate = RULES.rate(currency)
    assert reasons(ledger) == []
    assert ledger.rows["quota"].tolist() == [
        amount_to_quota(Decimal(amount), RULES.quota_per_unit, rate)
    ]
    assert ledger.currency == currency


def test_european_amounts_in_a_semicolon_file(tmp_path: Path) -> None:
    ledger = _amount_ledger(tmp_path, ["€ 1.234,50", "0,05 €", "1 234,5 EUR"], sep=";")
    rate = Decimal("0.9")
    expected = [
        amount_to_quota(Decimal(v), Decimal(500000), rate) for v in ("1234.50", "0.05", "1234.5")
    ]
    assert ledger.rows["quota"].tolist() == expected
    assert any("decimal comma detected" in w for w in ledger.warnings)


def test_a_semicolon_file_with_decimal_points_is_detected(tmp_path: Path) -> None:
    ledger = _amount_ledger(tmp_path, ["$1,234.50", "$0.05"], sep=";")
    assert ledger.rows["quota"].tolist() == [617250000, 25000]


def test_bad_thousands_grouping_is_unreadable_not_guessed(tmp_path: Path) -> None:
    ledger = _amount_ledger(tmp_path, ["$1,23,4.00", "$12.5.0"])
    assert [r[:2] for r in reasons(ledger)] == [(2, "amount"), (3, "amount")]
    assert "is not an amount (this file is read with a decimal point)" in reasons(ledger)[0][2]


def test_negative_amounts_only_on_refunds(tmp_path: Path) -> None:
    cells = ["-$1.00", "($1.00)", "$1.00-", "-$1.00"]
    ledger = _amount_ledger(tmp_path, cells, types=["refund", "refund", "refund", "consume"])
    assert ledger.rows["quota"].tolist() == [500000, 500000, 500000]
    ((line, field, reason),) = reasons(ledger)
    assert (line, field) == (5, "amount")
    assert "is negative" in reason


@pytest.mark.parametrize("cell", ["-$0", "-$0.00", "($0)", "$0-", "-0.00 USD"])
def test_minus_zero_is_zero_not_a_negative_amount(tmp_path: Path, cell: str) -> None:
    ledger = _amount_ledger(tmp_path, [cell], types=["consume"])
    assert reasons(ledger) == []
    assert ledger.rows["quota"].tolist() == [0]


def test_minus_zero_quota_is_zero(tmp_path: Path) -> None:
    ledger = load(write(tmp_path, "l.csv", HEAD + "1,2026-10-05,consume,-0\n"))
    assert reasons(ledger) == []
    assert ledger.rows["quota"].tolist() == [0]


def test_currency_column_and_conflicting_sign(tmp_path: Path) -> None:
    text = (
        "log_id,created_at,type,amount,currency\n"
        "1,2026-10-05,consume,0.18,cny\n"
        "2,2026-10-05,consume,$0.18,CNY\n"
        "3,2026-10-05,consume,0.18,GBP\n"
        "4,2026-10-05,consume,0.18,dollars\n"
        "5,2026-10-05,consume,0.18,\n"
    )
    ledger = load(write(tmp_path, "l.csv", text))
    assert ledger.rows["quota"].tolist() == [12500]
    got = reasons(ledger)
    assert got[0] == (
        3,
        "currency",
        "the amount '$0.18' is in USD but the currency column says CNY",
    )
    assert got[1] == (
        4,
        "currency",
        "no exchange rate for GBP in the rules' [currency] (units per 1 USD)",
    )
    assert got[2] == (5, "currency", "'dollars' is not a currency code")
    assert got[3][:2] == (6, "currency")


def test_amounts_with_no_currency_anywhere_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "l.csv", "log_id,created_at,type,amount\n1,2026-10-05,consume,0.18\n")
    with pytest.raises(InputError, match="amounts without a currency") as err:
        load(path)
    assert (err.value.line, err.value.field) == (1, "currency")
    rules = RULES.model_copy(update={"ledger": ColumnMap(currency="CNY")})
    assert load(path, rules).rows["quota"].tolist() == [12500]


def test_quota_cells_must_be_whole_quota(tmp_path: Path) -> None:
    text = HEAD + (
        '1,2026-10-05,consume,"12,000"\n'
        "2,2026-10-05,consume,12000.00\n"
        "3,2026-10-05,consume,12.5\n"
        "4,2026-10-05,consume,$12\n"
    )
    ledger = load(write(tmp_path, "l.csv", text))
    assert ledger.rows["quota"].tolist() == [12000, 12000]
    assert reasons(ledger) == [
        (4, "quota", "'12.5' is not a whole number of quota units"),
        (5, "quota", "'$12' has a currency sign: quota is in quota units, money goes in amount"),
    ]


def test_quota_wins_over_amount_but_amount_fills_an_empty_quota(tmp_path: Path) -> None:
    text = (
        "log_id,created_at,type,quota,amount,currency\n"
        "1,2026-10-05,consume,100,9.99,USD\n"
        "2,2026-10-05,consume,,0.01,USD\n"
        "3,2026-10-05,consume,,,USD\n"
    )
    ledger = load(write(tmp_path, "l.csv", text))
    assert ledger.rows["quota"].tolist() == [100, 5000]
    assert ledger.rows["rounding"].tolist() == [0, 2501]
    assert reasons(ledger) == [(4, "amount", "missing quota and amount")]


@settings(max_examples=60, deadline=None)
@given(
    units=st.integers(min_value=0, max_value=10**12),
    places=st.integers(min_value=0, max_value=6),
    rate=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1000), places=4),
)
def test_amount_conversion_matches_money_exactly(units: int, places: int, rate: Decimal) -> None:
    import tempfile

    amount = Decimal(units).scaleb(-places)
    rules = Rules(currency={"XTS": rate})
    text = f"log_id,created_at,type,amount,currency\n1,2026-10-05,consume,{amount:f},XTS\n"
    with tempfile.TemporaryDirectory() as tmp:
        ledger = load(write(Path(tmp), "l.csv", text), rules)
    expected = amount_to_quota(amount, rules.quota_per_unit, rate)
    if expected < 2**63:
        assert ledger.rows["quota"].tolist() == [expected]
    else:
        assert reasons(ledger) == [(2, "amount", f"'{amount:f}' is too large to be a quota")]


# --------------------------------------------------------------------------- times and types


@pytest.mark.parametrize(
    ("cell", "iso"),
    [
        ("2026-10-05T10:00:00+08:00", "2026-10-05T10:00:00+08:00"),
        ("2026-10-05T02:00:00Z", "2026-10-05T10:00:00+08:00"),
        ("2026-10-05 02:00:00 UTC", "2026-10-05T10:00:00+08:00"),
        ("2026-10-05 10:00:00 +0800", "2026-10-05T10:00:00+08:00"),
        ("2026-10-05 10:00:00", "2026-10-05T10:00:00+08:00"),
        ("2026-10-05T10:00:00.999", "2026-10-05T10:00:00+08:00"),
        ("2026/10/5 10:00", "2026-10-05T10:00:00+08:00"),
        ("2026-10-05", "2026-10-05T00:00:00+08:00"),
        ("1791165600", "2026-10-05T10:00:00+08:00"),
        ("1791165600.75", "2026-10-05T10:00:00+08:00"),
        ("1791165600123", "2026-10-05T10:00:00+08:00"),
    ],
)
def test_timestamps(tmp_path: Path, cell: str, iso: str) -> None:
    ledger = load(write(tmp_path, "l.csv", HEAD + f"1,{cell},consume,5\n"))
    assert reasons(ledger) == []
    assert ledger.rows["created_at"].tolist() == [ts(iso)]


def test_mixed_timestamp_styles_in_one_column(tmp_path: Path) -> None:
    text = HEAD + (
        "1,2026-10-05T10:00:00+08:00,consume,5\n"
        "2,2026-10-05 10:00:00,consume,5\n"
        "3,1791165600,consume,5\n"
        "4,2026/10/5 10:00:00,consume,5\n"
    )
    ledger = load(write(tmp_path, "l.csv", text))
    assert set(ledger.rows["created_at"]) == {ts("2026-10-05T10:00:00+08:00")}


def test_bad_times_are_unreadable(tmp_path: Path) -> None:
    text = HEAD + (
        "1,2026-10,consume,5\n"
        "2,yesterday,consume,5\n"
        "3,,consume,5\n"
        "4,2026-02-30 10:00:00,consume,5\n"
    )
    got = reasons(load(write(tmp_path, "l.csv", text)))
    assert [(line, field) for line, field, _ in got] == [
        (2, "created_at"),
        (3, "created_at"),
        (4, "created_at"),
        (5, "created_at"),
    ]
    assert got[1][2].startswith("'yesterday' is not a date and time")
    assert got[2][2] == "missing created_at"


def test_profile_date_format_for_day_first_dates(tmp_path: Path) -> None:
    rules = RULES.model_copy(update={"ledger": ColumnMap(date_format="%d/%m/%Y %H:%M")})
    path = write(
        tmp_path,
        "l.csv",
        HEAD + "1,05/10/2026 10:00,consume,5\n2,2026-10-05T10:00:00+08:00,consume,5\n",
    )
    assert set(load(path, rules).rows["created_at"]) == {ts("2026-10-05T10:00:00+08:00")}


def test_daylight_saving_gap_is_unreadable_with_a_reason(tmp_path: Path) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    text = HEAD + "1,2026-03-29 02:30:00,consume,5\n2,2026-03-29 03:30:00,consume,5\n"
    ledger = load(write(tmp_path, "l.csv", text), tz=berlin)
    assert ledger.rows["log_id"].tolist() == [2]
    ((line, field, reason),) = reasons(ledger)
    assert (line, field) == (2, "created_at")
    assert "does not exist or is ambiguous in Europe/Berlin" in reason


@pytest.mark.parametrize(
    ("cell", "code"),
    [
        ("consume", 2),
        ("CONSUME", 2),
        ("2", 2),
        ("消费", 2),
        ("Refund", 6),
        ("6", 6),
        ("退款", 6),
        ("topup", 1),
        ("top-up", 1),
        ("1", 1),
        ("充值", 1),
    ],
)
def test_type_words(tmp_path: Path, cell: str, code: int) -> None:
    ledger = load(write(tmp_path, "l.csv", HEAD + f"1,2026-10-05,{cell},5\n"))
    assert ledger.rows["type"].tolist() == [code]


@pytest.mark.parametrize("cell", ["error", "5", "manage", "chargeback"])
def test_other_types_are_unreadable(tmp_path: Path, cell: str) -> None:
    ledger = load(write(tmp_path, "l.csv", HEAD + f"1,2026-10-05,{cell},5\n"))
    assert reasons(ledger) == [
        (2, "type", f"'{cell}' is not a ledger type (consume, refund, topup or 2, 6, 1)")
    ]


# --------------------------------------------------------------------------- ids and findings


def test_ids_are_optional_per_row(tmp_path: Path) -> None:
    # A row with neither id is read: the matcher pairs it by content (token, model, time).
    text = (
        "log_id,request_id,created_at,type,quota\n"
        "1,,2026-10-05,consume,5\n"
        ",req-2,2026-10-05,consume,5\n"
        ",,2026-10-05,consume,5\n"
        "1.5e3,req-4,2026-10-05,consume,5\n"
        '="0042",,2026-10-05,consume,5\n'
    )
    ledger = load(write(tmp_path, "l.csv", text))
    assert ledger.rows["line"].tolist() == [2, 3, 4, 6]
    assert ledger.rows["log_id"].tolist() == [1, pd.NA, pd.NA, 42]
    assert ledger.rows["request_id"].tolist() == [pd.NA, "req-2", pd.NA, pd.NA]
    assert ledger.match_key == "log_id+request_id"
    assert reasons(ledger) == [(5, "log_id", "'1.5e3' is not a log id (a whole number)")]


def test_a_ledger_without_any_id_column_is_read(tmp_path: Path) -> None:
    text = (
        "created_at,type,token_name,model_name,prompt_tokens,completion_tokens,quota\n"
        "2026-10-05 10:00:00,consume,ci,gpt-4o,1200,80,5\n"
        "2026-10-05 10:00:02,consume,ci,gpt-4o,,,6\n"
        "2026-10-05 10:00:03,consume,ci,gpt-4o,12k,3,7\n"
    )
    ledger = load(write(tmp_path, "l.csv", text))
    assert ledger.match_key == "content"
    assert ledger.rows["prompt_tokens"].tolist() == [1200, pd.NA]
    assert ledger.rows["completion_tokens"].tolist() == [80, pd.NA]
    assert reasons(ledger) == [(4, "prompt_tokens", "'12k' is not a token count (a whole number)")]


def test_unreadable_rows_keep_line_field_reason_raw_and_become_findings(tmp_path: Path) -> None:
    text = HEAD + "1,2026-10-05,consume,5\n2,2026-10-05,consume,five\n3,bad,nope,6\n"
    ledger = load(write(tmp_path, "l.csv", text))
    bad = ledger.unreadable
    assert bad["line"].tolist() == [3, 4]
    assert bad["raw"].tolist() == ["2,2026-10-05,consume,five", "3,bad,nope,6"]
    assert bad["log_id"].tolist() == [2, 3]
    assert bad["reason"].iloc[1].endswith("(also unreadable: type)")
    found = unreadable_findings(ledger)
    assert found["category"].tolist() == [UNREADABLE_ROW] * 2
    assert found["severity"].tolist() == ["error", "error"]
    assert found["source"].tolist() == ["ledger", "ledger"]
    assert found["ledger_line"].tolist() == [3, 4]
    assert found["log_id"].tolist() == [2, 3]
    assert found["explanation"].iloc[0] == (
        "line 3: quota: 'five' is not a number; the row reads: 2,2026-10-05,consume,five"
    )


def test_rows_frame_shape(tmp_path: Path) -> None:
    ledger = load(write(tmp_path, "l.csv", HEAD + "1,2026-10-05,consume,5\n"))
    assert ledger.kind == "ledger"
    assert len(ledger.sha256) == 64
    assert dict(ledger.rows.dtypes.astype(str)) == {
        "line": "int64",
        "log_id": "Int64",
        "request_id": "string",
        "created_at": "int64",
        "type": "int64",
        "token_name": "string",
        "model_name": "string",
        "prompt_tokens": "Int64",
        "completion_tokens": "Int64",
        "quota": "int64",
        "rounding": "int64",
    }
    assert ledger.quota == 5
