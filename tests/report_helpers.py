"""A small, realistic computed run, built by hand, for the report writers' tests.

October 2026 in Asia/Shanghai; two API keys; consume logs of three models (one unpriced),
refunds, a topup and an error log; a ledger that misses some logs, disagrees on others,
claims one log twice, has a row dated outside the period and two unreadable rows. Some
token and model names are hostile spreadsheet text (formulas, error codes, signs).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd

from reconcile.core import findings as findings_mod
from reconcile.core.aggregates import LogAggregates
from reconcile.core.period import parse_period
from reconcile.core.results import FetchResult, InputFile, Ledger, Pricing, RunResult, WindowRecord
from reconcile.core.schema import (
    AMOUNT_MISMATCH,
    CONSUME,
    DUPLICATE_LEDGER,
    ERROR,
    EXPLAIN,
    LOG_DTYPES,
    MISSING_IN_LEDGER,
    MISSING_IN_LOGS,
    OUT_OF_PERIOD,
    PRICING_MISMATCH,
    REFUND,
    SEVERITY,
    TOPUP,
    TYPE_NAMES,
    UNPRICED_MODEL,
    UNREADABLE_ROW,
    findings_frame,
)
from reconcile.pricing.rules import ModelRule, Rules, Tolerance

TZ = ZoneInfo("Asia/Shanghai")
PERIOD = parse_period("2026-10", None, None, "Asia/Shanghai")
FETCHED_AT = datetime(2026, 11, 1, 3, 4, 5, tzinfo=TZ)

#: Text a spreadsheet would run or misread if written carelessly.
HOSTILE = ['=HYPERLINK("http://example.invalid","x")', "@SUM(1)", "+1", "-1", "#N/A", "=1+1"]
TOKENS = ["finance", "研发部", HOSTILE[0], HOSTILE[1], "ops"]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-x", HOSTILE[2], HOSTILE[3]]


def rules() -> Rules:
    return Rules(
        quota_per_unit=Decimal(500000),
        report_currency="USD",
        currency={"CNY": Decimal("7.2")},
        tolerance=Tolerance(quota=1, relative=Decimal(0)),
        groups={"default": Decimal(1), "vip": Decimal("0.8")},
        model=[
            ModelRule(match="gpt-4o*", model_ratio=Decimal("1.25"), completion_ratio=Decimal(4)),
            ModelRule(
                match="gpt-4o",
                model_ratio=Decimal("2.5"),
                completion_ratio=Decimal(4),
                effective_from=datetime(2026, 10, 15).date(),
                line=9,
            ),
            ModelRule(match="+1", model_price=Decimal("0.04"), line=15),
        ],
        path="rules/example.toml",
        sha256="ab" * 32,
    )


def _ts(day: int, hour: int = 12) -> int:
    return int(datetime(2026, 10, day, hour, 0, tzinfo=TZ).timestamp())


def logs() -> pd.DataFrame:
    rows = []
    log_id = 1000
    for i in range(30):
        log_id += 3
        day = 1 + (i * 7) % 31
        model = MODELS[i % len(MODELS)]
        rows.append(
            {
                "id": log_id,
                "created_at": _ts(day, 8 + i % 12),
                "type": CONSUME,
                "key_ref": "key-aaaa1111" if i % 2 else "key-bbbb2222",
                "token_name": TOKENS[i % len(TOKENS)],
                "username": "acme",
                "model_name": model,
                "group": "vip" if i % 6 == 0 else HOSTILE[5] if i % 10 == 7 else "default",
                "quota": 1000 * (i + 1) + (7 if i % 9 == 4 else 0),
                "prompt_tokens": 500 + i,
                "completion_tokens": 100 + i,
                "use_time": 2,
                "is_stream": bool(i % 2),
                "channel": 1,
                "request_id": HOSTILE[4] if i == 29 else f"req-{i:04d}",
                "content": "模型倍率 1.25，补全倍率 4.00，分组倍率 1.00",
                "other": "{}",
            }
        )
    extra = [
        (REFUND, 3, 2500, "finance", "gpt-4o", "=cmd|' /C calc'!A0 refund"),
        (REFUND, 20, 1200, TOKENS[2], "gpt-4o-mini", "task failed, refunded"),
        (TOPUP, 1, 5_000_000, "finance", "", "topup"),
        (ERROR, 5, 0, "ops", "gpt-4o", "upstream error"),
    ]
    for typ, day, quota, token, model, content in extra:
        log_id += 3
        rows.append(
            {
                "id": log_id,
                "created_at": _ts(day),
                "type": typ,
                "key_ref": "key-aaaa1111",
                "token_name": token,
                "username": "acme",
                "model_name": model,
                "group": "default",
                "quota": quota,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "use_time": 0,
                "is_stream": False,
                "channel": 1,
                "request_id": "",
                "content": content,
                "other": "",
            }
        )
    df = pd.DataFrame(rows)
    return df.astype(LOG_DTYPES)[list(LOG_DTYPES)]


def priced(log_df: pd.DataFrame) -> pd.DataFrame:
    consume = log_df[log_df["type"] == CONSUME]
    out = []
    for row in consume.itertuples(index=False):
        model = str(row.model_name)
        if model in ("claude-x", HOSTILE[3]):
            status, rule, expected, reason = "unpriced", "", None, "no rule prices this model"
        else:
            rule = "gpt-4o*" if model.startswith("gpt") else "+1"
            expected = int(row.quota) - (7 if int(row.quota) % 1000 == 7 else 0)
            status = "mismatch" if expected != row.quota else "ok"
            reason = "charged 7 quota more than the rule gives" if status == "mismatch" else ""
        out.append(
            {
                "id": int(row.id),
                "rule": rule,
                "model_ratio": "1.25",
                "completion_ratio": "4",
                "cache_ratio": "1",
                "cache_creation_ratio": "1",
                "group_ratio": "1",
                "model_price": "",
                "expected_quota": expected,
                "diff_quota": None if expected is None else int(row.quota) - expected,
                "status": status,
                "reason": reason,
                "path": "" if status == "unpriced" else "text",
                "reason_code": "",
            }
        )
    df = pd.DataFrame(out)
    df["expected_quota"] = df["expected_quota"].astype("Int64")
    df["diff_quota"] = df["diff_quota"].astype("Int64")
    for c in ("rule", "status", "reason", "path", "reason_code"):
        df[c] = df[c].astype("string")
    return df


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, TZ).isoformat()


def _finding(category: str, source: str, **values: object) -> dict[str, object]:
    return {
        "category": category,
        "severity": SEVERITY[category],
        "source": source,
        "explanation": EXPLAIN[category],
        **values,
    }


def build(log_df: pd.DataFrame, price_df: pd.DataFrame) -> tuple[Ledger, list[dict[str, object]]]:
    """A ledger for the logs with planted faults, and the findings those faults give."""
    found: list[dict[str, object]] = []
    rows = []
    line = 1
    by_id = log_df.set_index("id")
    for n, row in enumerate(log_df.itertuples(index=False)):
        if row.type == ERROR:
            continue
        base = {
            "log_id": int(row.id),
            "type": TYPE_NAMES[int(row.type)],
            "token_name": row.token_name,
            "model_name": row.model_name,
            "created_at": _iso(int(row.created_at)),
            "request_id": row.request_id,
            "group": row.group,
            "log_quota": int(row.quota),
        }
        if n % 8 == 5:  # no ledger row
            found.append(_finding(MISSING_IN_LEDGER, "ledger", **base, diff_quota=int(row.quota)))
            continue
        quota = int(row.quota) + (500 if n % 11 == 3 else 0)
        claim = (
            int(row.id),
            row.request_id,
            int(row.created_at),
            int(row.type),
            row.token_name,
            row.model_name,
            quota,
        )
        line += 1
        rows.append((line, *claim))
        if quota != row.quota:
            found.append(
                _finding(
                    AMOUNT_MISMATCH,
                    "ledger",
                    **base,
                    ledger_line=line,
                    ledger_quota=quota,
                    diff_quota=abs(quota - int(row.quota)),
                )
            )
        if n == 2:  # claimed twice
            line += 1
            rows.append((line, *claim))
            found.append(
                _finding(
                    DUPLICATE_LEDGER,
                    "ledger",
                    **base,
                    ledger_line=line,
                    ledger_quota=quota,
                    diff_quota=quota,
                )
            )
    line += 1
    rows.append((line, 999_999, "", _ts(9), CONSUME, "finance", "gpt-4o", 4321))
    found.append(
        _finding(
            MISSING_IN_LOGS,
            "ledger",
            log_id=999_999,
            ledger_line=line,
            type="consume",
            token_name="finance",
            model_name="gpt-4o",
            created_at=_iso(_ts(9)),
            ledger_quota=4321,
            diff_quota=4321,
        )
    )
    line += 1
    outside = int(datetime(2026, 9, 30, 23, 0, tzinfo=TZ).timestamp())
    rows.append((line, pd.NA, "", outside, CONSUME, "@SUM(1)", "gpt-4o", 777))
    found.append(
        _finding(
            OUT_OF_PERIOD,
            "ledger",
            ledger_line=line,
            type="consume",
            token_name="@SUM(1)",
            model_name="gpt-4o",
            created_at=_iso(outside),
            ledger_quota=777,
            diff_quota=777,
        )
    )
    ledger_rows = pd.DataFrame(
        rows,
        columns=[
            "line",
            "log_id",
            "request_id",
            "created_at",
            "type",
            "token_name",
            "model_name",
            "quota",
        ],
    ).astype(
        {
            "line": "int64",
            "log_id": "Int64",
            "request_id": "string",
            "created_at": "Int64",
            "type": "int64",
            "token_name": "string",
            "model_name": "string",
            "quota": "int64",
        }
    )
    unreadable = pd.DataFrame(
        {
            "line": [line + 1, line + 2],
            "field": ["quota", "created_at"],
            "reason": ["'12,3.4' is not a number", "not a date"],
            "raw": ['1200;2026-10-02;=HYPERLINK("http://example.invalid");12,3.4', "x\x07y"],
        }
    )
    for u in unreadable.itertuples(index=False):
        found.append(
            _finding(
                UNREADABLE_ROW,
                "ledger",
                ledger_line=int(u.line),
                explanation=f"{u.field}: {u.reason}",
            )
        )
    for row in price_df.itertuples(index=False):
        log = by_id.loc[int(row.id)]
        base = {
            "log_id": int(row.id),
            "type": "consume",
            "token_name": log["token_name"],
            "model_name": log["model_name"],
            "created_at": _iso(int(log["created_at"])),
            "log_quota": int(log["quota"]),
            "group": log["group"],
        }
        if row.status == "mismatch":
            found.append(
                _finding(
                    PRICING_MISMATCH,
                    "pricing",
                    **base,
                    expected_quota=int(row.expected_quota),
                    diff_quota=abs(int(row.diff_quota)),
                )
            )
        elif row.status == "unpriced":
            found.append(_finding(UNPRICED_MODEL, "pricing", **base, diff_quota=0))
    ledger = Ledger(
        kind="ledger",
        path="books/ledger-2026-10.csv",
        sha256="cd" * 32,
        rows=ledger_rows,
        unreadable=unreadable,
    )
    return ledger, found


def make_result(*, fail_on: str = "error", currency: str = "USD") -> RunResult:
    log_df = logs()
    price_df = priced(log_df)
    ledger, found = build(log_df, price_df)
    the_rules = rules()
    the_rules = the_rules.model_copy(update={"report_currency": currency})
    frame = findings_frame(pd.DataFrame(found))
    final = findings_mod.finalize([frame], the_rules)
    expected = int(price_df["expected_quota"].dropna().sum())
    pricing = Pricing(
        priced=price_df,
        findings=frame[frame["source"] == "pricing"],
        expected_quota=expected,
        warnings=["2 consume logs use models no rule prices: claude-x, @SUM(1)"],
    )
    fetch = FetchResult(
        period=PERIOD,
        logs=log_df,
        windows=[
            WindowRecord("key-aaaa1111", PERIOD.start_ts, PERIOD.end_ts - 1, 19, 19, 1, 1),
            WindowRecord("key-bbbb2222", PERIOD.start_ts, PERIOD.end_ts - 1, 15, 15, 1, 1),
        ],
        key_refs=["key-aaaa1111", "key-bbbb2222"],
        fetched_at=FETCHED_AT,
        base_url="https://gateway.example.invalid",
        duplicates=2,
    )
    failed = findings_mod.reaches(final, fail_on)
    return RunResult(
        fetch=fetch,
        rules=the_rules,
        pricing=pricing,
        findings=final,
        inputs=[
            InputFile("rules", the_rules.path, the_rules.sha256),
            InputFile("ledger", ledger.path, ledger.sha256),
        ],
        fail_on=fail_on,
        status="fail" if failed else "pass",
        aggregates=LogAggregates.of(log_df, price_df, PERIOD),
        ledger=ledger,
        warnings=list(pricing.warnings),
    )


def clean_result() -> RunResult:
    """A run with nothing to report: no findings, no ledger, status pass."""
    result = make_result()
    empty = result.findings.iloc[0:0].copy()
    return replace(result, findings=empty, ledger=None, status="pass", inputs=result.inputs[:1])


def invoice_result() -> RunResult:
    """The same month checked against an invoice: charges by model and day, one line off."""
    result = make_result()
    logs = result.fetch.logs
    consume = logs[logs["type"] == CONSUME]
    day = pd.to_datetime(consume["created_at"], unit="s", utc=True).dt.tz_convert(TZ)
    lines = (
        consume.assign(date=day.dt.strftime("%Y-%m-%d"))
        .groupby(["model_name", "date"], as_index=False)["quota"]
        .sum()
    )
    lines.loc[0, "quota"] += 1000
    rows = pd.DataFrame(
        {
            "line": range(2, len(lines) + 2),
            "model_name": lines["model_name"].astype("string"),
            "date": lines["date"].astype("string"),
            "token_name": pd.Series(pd.NA, index=lines.index, dtype="string"),
            "quota": lines["quota"].astype("int64"),
        }
    )
    empty = pd.DataFrame({"line": [], "field": [], "reason": [], "raw": []})
    invoice = Ledger(
        kind="invoice", path="invoice-2026-10.csv", sha256="ef" * 32, rows=rows, unreadable=empty
    )
    findings = result.findings[result.findings["source"] == "pricing"].reset_index(drop=True)
    return replace(
        result,
        ledger=None,
        invoice=invoice,
        findings=findings,
        inputs=[result.inputs[0], InputFile("invoice", invoice.path, invoice.sha256)],
    )


def empty_result() -> RunResult:
    """A period in which the gateway logged nothing and nothing was found."""
    result = clean_result()
    logs = result.fetch.logs.iloc[0:0]
    priced = result.pricing.priced.iloc[0:0]
    pricing = replace(result.pricing, priced=priced, findings=priced.iloc[0:0], expected_quota=0)
    fetch = replace(result.fetch, logs=logs, windows=[], duplicates=0)
    aggregates = LogAggregates.of(logs, priced, PERIOD)
    return replace(result, fetch=fetch, pricing=pricing, aggregates=aggregates, warnings=[])
