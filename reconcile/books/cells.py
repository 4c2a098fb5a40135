"""Vectorised reading of CSV cells: ids, quotas, money, types and currencies (times: times.py).

Every parser takes a pyarrow string array and returns numpy values plus a mask of the cells it
could not read; `problems.Problems` turns those masks into one reason per bad row. Python runs per
distinct value (types, currencies) or per failing row, never once per row, so a million-row
file parses in a second or two.

Number formats (decided once per file, see `detect_decimal`):
- `.` decimal point: `1234.5`, `1,234.50`; `,` decimal comma: `1234,5`, `1.234,50`.
  Spaces, no-break spaces and `'` group thousands in either. Thousands groups must be 3 digits.
- currency signs or codes before or after the number: `$`, `US$`, `¥`/`￥`/`CN¥`/`RMB`/`元`
  (= CNY: these files come from CNY-billing gateways; write `JPY` for yen), `€`, `£`, `USD`...
- a sign: `-12.50`, `(12.50)` (accounting), `12.50-` (SAP). Signs are for the loaders to judge.
- Excel's `="0123"` text guard is unwrapped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]
V = TypeVar("V")

_GROUPING = r"[\s\x{00a0}\x{202f}'_]"
_SIGNS = "$¥￥€£"
_AMOUNT = (
    r"^(?P<s1>[-−+]?)\s*(?P<pre>[^\d\s.,()+\-−]*)\s*(?P<s2>[-−+]?)\s*"
    r"(?P<num>\d[\d.,'\x{00a0}\x{202f} ]*)\s*(?P<post>[^\d\s.,()+\-−]*)\s*(?P<s3>-?)$"
)
#: Numbers with a thousands separator must group by three: `1,234,567.5`, `1.234.567,5`.
_GROUPED = {
    ".": r"^\d{1,3}(?:,\d{3})+(?:\.\d+)?$",
    ",": r"^\d{1,3}(?:\.\d{3})+(?:,\d+)?$",
}
_THOUSANDS = {".": ",", ",": "."}
#: Unambiguous evidence of each style (a 3-digit tail after one separator is ambiguous).
_COMMA_DECIMAL = r"^\d{1,3}(?:\.\d{3})+,\d+$|^\d+,(?:\d{1,2}|\d{4,})$|^0,\d+$"
_POINT_DECIMAL = r"^\d{1,3}(?:,\d{3})+\.\d+$|^\d+\.(?:\d{1,2}|\d{4,})$|^0\.\d+$"
MAX_PLACES = 12
MAX_DIGITS = 18

#: Currency words and signs seen in finance exports, upper-cased, to ISO 4217 codes.
CURRENCY_WORDS: dict[str, str] = {
    "$": "USD",
    "US$": "USD",
    "US": "USD",
    "美元": "USD",
    "¥": "CNY",
    "￥": "CNY",
    "CN¥": "CNY",
    "CN￥": "CNY",
    "RMB": "CNY",
    "元": "CNY",
    "人民币": "CNY",
    "€": "EUR",
    "£": "GBP",
    "HK$": "HKD",
    "JP¥": "JPY",
    "円": "JPY",
}
_CODE = re.compile(r"^[A-Z]{3}$")

#: Ledger `type` cells: new-api's names and codes, and the Chinese words finance uses.
TYPE_WORDS: dict[str, int] = {
    "consume": 2,
    "consumption": 2,
    "2": 2,
    "消费": 2,
    "refund": 6,
    "6": 6,
    "退款": 6,
    "topup": 1,
    "top-up": 1,
    "top up": 1,
    "recharge": 1,
    "1": 1,
    "充值": 1,
}


def currency_code(text: str) -> str | None:
    """`$` → USD, `rmb` → CNY, `eur` → EUR; None when it is not a currency."""
    key = text.strip().upper()
    if not key:
        return None
    code = CURRENCY_WORDS.get(key) or CURRENCY_WORDS.get(text.strip())
    if code:
        return code
    return key if _CODE.match(key) else None


def mask(arr: Any) -> BoolArray:
    """A pyarrow boolean array as numpy, nulls as False."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def ints(arr: Any) -> IntArray:
    return np.asarray(pc.fill_null(arr, 0).to_numpy(zero_copy_only=False), dtype=np.int64)


def clean(cells: Any) -> Any:
    """Trim whitespace (also no-break and ideographic spaces) and Excel's `="..."` guard."""
    arr = cells.combine_chunks() if isinstance(cells, pa.ChunkedArray) else cells
    arr = pc.utf8_trim_whitespace(arr)
    if len(arr) and pc.any(pc.starts_with(arr, '="')).as_py():
        arr = pc.replace_substring_regex(arr, r'^="(.*)"$', r"\1")
    return arr


def empty(t: Any) -> BoolArray:
    return mask(pc.equal(t, ""))


def texts(t: Any) -> Any:
    """Cleaned cells as a pandas "string" array, empty cells as NA."""
    arr = pc.if_else(pc.equal(t, ""), pa.scalar(None, pa.string()), t)
    return arr.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get).array


def cell(t: Any, row: int) -> str:
    return str(t[row].as_py())


def map_words(t: Any, lookup: Callable[[str], V | None]) -> tuple[list[V | None], IntArray]:
    """Map each distinct cell once: (values per distinct cell, index of each row's cell)."""
    enc = pc.dictionary_encode(t)
    values = [lookup(str(u)) for u in enc.dictionary.to_pylist()]
    return values, np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


# --------------------------------------------------------------------------- numbers


@dataclass
class MoneyText:
    """Money cells split into the number text and what surrounds it (sign, currency)."""

    num: Any  # pyarrow strings: the number as written, grouping spaces/quotes removed
    negative: BoolArray  # written negative: `-12`, `(12)`, `12-`
    symbol: ObjArray  # currency a sign or code in the cell implies, else None
    two_currencies: BoolArray  # `$12 EUR`
    shaped: BoolArray  # [sign][currency]number[currency][sign]: the number part can be read
    empty: BoolArray


def money_text(t: Any) -> MoneyText:
    """Split money cells; cells of only digits, `.` and `,` (the usual case) skip the regex."""
    n = len(t)
    is_empty = empty(t)
    digits = mask(pc.ascii_is_decimal(t))
    simple = digits.copy()
    if not (digits | is_empty).all():
        simple |= mask(pc.match_substring_regex(t, r"^[0-9.,]+$"))
    negative = np.zeros(n, dtype=bool)
    symbol = np.full(n, None, dtype=object)
    two = np.zeros(n, dtype=bool)
    shaped = simple.copy()
    num = t
    fancy = ~simple & ~is_empty
    if fancy.any():
        # The usual fancy cell is one sign and a plain number (`¥0.18`, `$1,234.50`).
        bare = pc.utf8_ltrim(t, characters=_SIGNS)
        signed = fancy & (ints(pc.utf8_length(t)) - ints(pc.utf8_length(bare)) == 1)
        if signed.any():
            signed &= mask(pc.match_substring_regex(bare, r"^[0-9.,]+$"))
        if signed.any():
            signs, idx = map_words(pc.utf8_slice_codeunits(t, 0, 1), currency_code)
            symbol[signed] = np.array([*signs, None], dtype=object)[idx][signed]
            num = pc.replace_with_mask(num, pa.array(signed), pc.filter(bare, pa.array(signed)))
            shaped |= signed
            fancy &= ~signed
    if fancy.any():
        where = np.flatnonzero(fancy)
        sub = pc.filter(t, pa.array(fancy))
        paren = mask(pc.match_substring_regex(sub, r"^\(.*\)$"))
        if paren.any():
            sub = pc.replace_substring_regex(sub, r"^\((.*)\)$", r"\1")
        parts = pc.extract_regex(sub, _AMOUNT)
        matched = mask(pc.is_valid(parts))

        def part(name: str) -> Any:
            return pc.fill_null(pc.struct_field(parts, name), "")

        neg = paren.copy()
        for name in ("s1", "s2", "s3"):
            neg |= mask(pc.is_in(part(name), pa.array(["-", "−"])))
        pre, post = part("pre"), part("post")
        both = mask(pc.and_(pc.not_equal(pre, ""), pc.not_equal(post, "")))
        marker = pc.if_else(pc.equal(pre, ""), post, pre)
        codes, idx = map_words(marker, lambda w: currency_code(w) if w else "")
        known = np.array([c is not None for c in codes] + [False], dtype=bool)[idx]
        sub_symbol = np.array([c or None for c in codes] + [None], dtype=object)[idx]
        sub_two = both & mask(pc.not_equal(pre, post))
        sub_num = pc.replace_substring_regex(part("num"), _GROUPING, "")
        num = pc.replace_with_mask(num, pa.array(fancy), sub_num)
        negative[where] = neg & matched
        symbol[where] = sub_symbol
        two[where] = sub_two
        shaped[where] = matched & known & ~sub_two
    return MoneyText(num, negative, symbol, two, shaped, is_empty)


def detect_decimal(m: MoneyText, delimiter: str) -> tuple[str, str]:
    """The file's decimal separator from its money column, and why.

    A value like `1.234,50` or `12,5` proves a decimal comma, `1,234.50` or `12.5` a decimal
    point; `1.234` alone proves nothing. The style with more proof wins; with none (or a tie),
    `;`-separated files use a decimal comma (Excel writes `;` exactly in the locales that do)
    and others a decimal point.
    """
    comma = point = 0
    comma_at = point_at = -1
    if len(m.num) and pc.any(pc.match_substring(m.num, ",")).as_py():
        hits = mask(pc.match_substring_regex(m.num, _COMMA_DECIMAL))
        comma, comma_at = int(hits.sum()), int(np.argmax(hits))
    if len(m.num) and pc.any(pc.match_substring(m.num, ".")).as_py():
        hits = mask(pc.match_substring_regex(m.num, _POINT_DECIMAL))
        point, point_at = int(hits.sum()), int(np.argmax(hits))
    if comma > point:
        return ",", f"decimal comma detected ({comma} values such as {cell(m.num, comma_at)!r})"
    if point > comma:
        return ".", f"decimal point detected ({point} values such as {cell(m.num, point_at)!r})"
    if delimiter != ";":
        return ".", ""
    if comma_at < 0 and point_at < 0:
        return ",", ""
    return ",", (
        "numbers read with a decimal comma (as in 1.234,50): nothing in the file settles it "
        'and ;-separated files usually mean it; set decimal = "." in the profile if not'
    )


@dataclass
class Amounts:
    """Money cells: magnitude as an integer count of 10**-scale, sign and currency apart."""

    units: IntArray
    scale: int
    places: IntArray  # decimal places as written (`12.50` has 2), for the rounding allowance
    negative: BoolArray
    symbol: ObjArray  # currency code a sign or code in the cell implies, else None
    ok: BoolArray  # read (False for empty cells too)
    empty: BoolArray
    two_currencies: BoolArray  # a sign before and a different one after: `$12 EUR`


def parse_amount(m: MoneyText, decimal: str) -> Amounts:
    """Read money cells exactly (never via float): `$1,234.50`, `1.234,50 €`, `(12.50)`..."""
    num = m.num
    n = len(num)
    thousands = _THOUSANDS[decimal]
    grouped = mask(pc.match_substring(num, thousands)) if n else np.zeros(0, bool)
    ok = m.shaped & ~m.empty
    if grouped.any():
        ok &= ~grouped | mask(pc.match_substring_regex(num, _GROUPED[decimal]))
        num = pc.replace_substring(num, thousands, "")
    split = pc.split_pattern(num, decimal, max_splits=1)
    offsets = np.asarray(split.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    values = split.values
    lens = np.diff(offsets)
    first = offsets[:-1]
    ipart = values.take(pa.array(first))
    two_parts = lens == 2
    fpart = pc.if_else(
        pa.array(two_parts), values.take(pa.array(np.where(two_parts, first + 1, first))), ""
    )
    ok &= mask(pc.ascii_is_decimal(ipart))
    ok &= ~two_parts | mask(pc.ascii_is_decimal(fpart))
    places = np.where(two_parts, ints(pc.utf8_length(fpart)), 0).astype(np.int64)
    ok &= places <= MAX_PLACES
    scale = int(places[ok].max()) if ok.any() else 0
    ok &= (ints(pc.utf8_length(ipart)) + scale) <= MAX_DIGITS
    okarr = pa.array(ok)
    whole = ints(pc.cast(pc.if_else(okarr, ipart, "0"), pa.int64()))
    units = whole * np.int64(10**scale)
    if scale:
        padded = pc.utf8_rpad(fpart, scale, "0")
        units = units + ints(pc.cast(pc.if_else(okarr, padded, "0"), pa.int64()))
    return Amounts(
        units=units,
        scale=scale,
        places=np.where(ok, places, 0).astype(np.int64),
        negative=m.negative & ok & (units != 0),  # `-0` is zero, not a negative amount
        symbol=m.symbol,
        ok=ok,
        empty=m.empty,
        two_currencies=m.two_currencies,
    )


def whole_numbers(t: Any, decimal: str) -> tuple[IntArray, BoolArray, BoolArray]:
    """Whole numbers like `12345`, `12,345`, `12345.00` (ids): (values, ok, empty)."""
    is_empty = empty(t)
    digits = mask(pc.ascii_is_decimal(t)) & (ints(pc.utf8_length(t)) <= MAX_DIGITS)
    if (digits | is_empty).all():
        values = ints(pc.cast(pc.if_else(pa.array(digits), t, "0"), pa.int64()))
        return values, digits, is_empty
    amount = parse_amount(money_text(t), decimal)
    step = np.int64(10**amount.scale)
    no_sign = np.asarray(pd.isna(amount.symbol), dtype=bool) & ~amount.negative
    ok = amount.ok & no_sign & (amount.units % step == 0)
    return np.where(ok, amount.units // step, 0).astype(np.int64), ok, amount.empty


def to_quota(
    units: IntArray, scale: int, places: IntArray, rate: Decimal, quota_per_unit: Decimal
) -> tuple[IntArray, IntArray, BoolArray]:
    """Exact amounts (units of 10**-scale) → quota, half away from zero; allowance; too big.

    quota = amount * quota_per_unit / rate, as money.amount_to_quota does, in integer
    arithmetic. The allowance is how far the quota can be from the true one because the
    amount was written to `places` decimals: half of the last place, plus the half quota
    lost rounding to an integer, rounded up. `too_big` marks quotas beyond int64.
    """
    per_scaled_unit = Fraction(quota_per_unit) / (Fraction(rate) * 10**scale)
    num, den = per_scaled_unit.numerator, per_scaled_unit.denominator
    hi = int(units.max()) if len(units) else 0
    too_big = np.zeros(len(units), dtype=bool)
    if num < 2**62 and den < 2**62 and 2 * hi * num + den < 2**63:
        quota = (2 * units * num + den) // (2 * den)
    else:
        exact = [(2 * int(u) * num + den) // (2 * den) for u in units]
        too_big = np.array([q >= 2**63 for q in exact], dtype=bool)
        quota = np.array([0 if q >= 2**63 else q for q in exact], dtype=np.int64)
    per_unit = Fraction(quota_per_unit) / Fraction(rate)
    lookup = np.zeros(int(places.max()) + 1 if len(places) else 1, dtype=np.int64)
    for p in np.unique(places).tolist():
        lookup[p] = min(math.ceil(per_unit / (2 * 10**p) + Fraction(1, 2)), 2**62)
    return np.asarray(quota, dtype=np.int64), lookup[places], too_big
