"""Column names and vocabularies shared by every stage, so data flows one way without guessing."""

from __future__ import annotations

from typing import Final

import pandas as pd

# Gateway log types (new-api's LogType*).
TOPUP: Final = 1
CONSUME: Final = 2
MANAGE: Final = 3
SYSTEM: Final = 4
ERROR: Final = 5
REFUND: Final = 6

#: The log types a reconciliation keeps, by name as used in summary.json and ledgers.
TYPE_NAMES: Final[dict[int, str]] = {
    CONSUME: "consume",
    REFUND: "refund",
    TOPUP: "topup",
    ERROR: "error",
}
TYPE_CODES: Final[dict[str, int]] = {v: k for k, v in TYPE_NAMES.items()}

#: Columns of the logs table (fetch → snapshot → price → match → report) and their dtypes.
#: `key_ref` names the API key that fetched the row without revealing it.
LOG_DTYPES: Final[dict[str, str]] = {
    "id": "int64",
    "created_at": "int64",
    "type": "int64",
    "key_ref": "string",
    "token_name": "string",
    "username": "string",
    "model_name": "string",
    "group": "string",
    "quota": "int64",
    "prompt_tokens": "int64",
    "completion_tokens": "int64",
    "use_time": "int64",
    "is_stream": "bool",
    "channel": "int64",
    "request_id": "string",
    "content": "string",
    "other": "string",
}
LOG_COLUMNS: Final = list(LOG_DTYPES)


def empty_logs() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in LOG_DTYPES.items()})


# Discrepancy categories: the contract's seven first, then the ones this tool adds.
PRICING_MISMATCH: Final = "pricing_mismatch"
UNPRICED_MODEL: Final = "unpriced_model"
MISSING_IN_LEDGER: Final = "missing_in_ledger"
MISSING_IN_LOGS: Final = "missing_in_logs"
AMOUNT_MISMATCH: Final = "amount_mismatch"
DUPLICATE_LEDGER: Final = "duplicate_ledger"
OUT_OF_PERIOD: Final = "out_of_period"
NOT_REPRICEABLE: Final = "not_repriceable"
UNREADABLE_ROW: Final = "unreadable_row"
AMBIGUOUS_MATCH: Final = "ambiguous_match"
OPEN_PERIOD: Final = "open_period"

CATEGORIES: Final[tuple[str, ...]] = (
    PRICING_MISMATCH,
    UNPRICED_MODEL,
    MISSING_IN_LEDGER,
    MISSING_IN_LOGS,
    AMOUNT_MISMATCH,
    DUPLICATE_LEDGER,
    OUT_OF_PERIOD,
    NOT_REPRICEABLE,
    UNREADABLE_ROW,
    AMBIGUOUS_MATCH,
    OPEN_PERIOD,
)

#: Severity of each category; `--fail-on LEVEL` fails on findings at or above LEVEL.
SEVERITY: Final[dict[str, str]] = {
    PRICING_MISMATCH: "error",
    UNPRICED_MODEL: "warning",
    MISSING_IN_LEDGER: "error",
    MISSING_IN_LOGS: "error",
    AMOUNT_MISMATCH: "error",
    DUPLICATE_LEDGER: "error",
    OUT_OF_PERIOD: "warning",
    NOT_REPRICEABLE: "warning",
    UNREADABLE_ROW: "error",
    AMBIGUOUS_MATCH: "error",
    OPEN_PERIOD: "error",  # an unfinished period cannot be signed off as reconciled
}
SEVERITY_RANK: Final[dict[str, int]] = {"info": 1, "warning": 2, "error": 3}

EXPLAIN: Final[dict[str, str]] = {
    PRICING_MISMATCH: "the gateway charged a different quota than the contract's rules give",
    UNPRICED_MODEL: "no pricing rule covers this model, so its charge cannot be checked",
    MISSING_IN_LEDGER: "a gateway log with no ledger row",
    MISSING_IN_LOGS: "a ledger row with no gateway log",
    AMOUNT_MISMATCH: "the log and its ledger row disagree on the amount",
    DUPLICATE_LEDGER: "another ledger row already claims this log",
    OUT_OF_PERIOD: "a ledger row dated outside the period",
    NOT_REPRICEABLE: "the log lacks the fields needed to re-price it",
    UNREADABLE_ROW: "a ledger or invoice row that could not be read",
    AMBIGUOUS_MATCH: (
        "a ledger row without ids that logs fit equally well, none with its amount: not paired"
    ),
    OPEN_PERIOD: "the period had not ended when the logs were fetched: the report is incomplete",
}

#: What a reviewer does about a category's findings (each finding also has its own action).
ACTION: Final[dict[str, str]] = {
    PRICING_MISMATCH: "overcharged: claim a credit from the gateway's operator; "
    "undercharged: expect a back-charge, or correct the rule if the contract changed",
    UNPRICED_MODEL: "add a pricing rule for the model, then rerun from the snapshot",
    MISSING_IN_LEDGER: "book the log in the ledger (or explain why it is not billable)",
    MISSING_IN_LOGS: "remove the ledger line, or find the gateway log it should match",
    AMOUNT_MISMATCH: "correct the ledger line to the gateway's amount, or dispute the charge",
    DUPLICATE_LEDGER: "remove the duplicate ledger line",
    OUT_OF_PERIOD: "move the ledger line to the period it is dated in",
    NOT_REPRICEABLE: "check the log's charge by hand: the gateway did not record what prices it",
    UNREADABLE_ROW: "fix the line in the ledger or invoice file, then rerun",
    AMBIGUOUS_MATCH: "find which log the ledger line books (request id, time), then add its id",
    OPEN_PERIOD: "rerun after the period has ended (a rerun refetches; --from-snapshot does not)",
}

#: Columns of a findings table, in the order of discrepancies.csv and the Discrepancies sheet.
#: Stages fill everything up to `explanation`; `findings.finalize` adds the money columns.
FINDING_DTYPES: Final[dict[str, str]] = {
    "category": "string",
    "severity": "string",
    "source": "string",  # pricing | ledger | invoice
    "log_id": "Int64",
    "ledger_line": "Int64",  # line number in the ledger/invoice file (header is line 1)
    "request_id": "string",
    "created_at": "string",  # ISO 8601 in the run's time zone
    "type": "string",  # consume | refund | topup | error
    "token_name": "string",
    "model_name": "string",
    "group": "string",
    "log_quota": "Int64",
    "ledger_quota": "Int64",
    "expected_quota": "Int64",
    "diff_quota": "Int64",  # at stake, >= 0: |difference|, or the whole amount when missing
    "explanation": "string",
}
FINDING_COLUMNS: Final = list(FINDING_DTYPES)
#: Added by findings.finalize: `diff_amount` (exact Decimal) in `currency`.
MONEY_COLUMNS: Final = ["diff_amount", "currency"]
#: Columns added later, kept after the money columns so no earlier column moves.
#: `matched_on`: the key a ledger finding's row was matched by: log_id | request_id | tolerant.
#: `path`: a pricing finding's billing path (reconcile.pricing.paths); NA for other stages.
TRAILING_DTYPES: Final[dict[str, str]] = {"matched_on": "string", "path": "string"}
TRAILING_COLUMNS: Final = list(TRAILING_DTYPES)
#: Added by findings.finalize after the money columns (see findings.py for the sign convention):
#: gateway − contract and gateway − books (Int64, NA where the finding makes no such
#: comparison), the same in money, each side's amount, and what to do.
REVIEW_COLUMNS: Final = [
    "contract_diff_quota",
    "books_diff_quota",
    "contract_diff_amount",
    "books_diff_amount",
    "log_amount",
    "ledger_amount",
    "action",
]
#: Every column of discrepancies.csv and the Discrepancies sheet, in order.
OUTPUT_COLUMNS: Final = [*FINDING_COLUMNS, *MONEY_COLUMNS, *REVIEW_COLUMNS, *TRAILING_COLUMNS]
#: How a log type counts in spend: refunds reduce it; top-ups are credit, totalled apart.
SPEND_SIGN: Final[dict[str, int]] = {"consume": 1, "refund": -1, "topup": 1, "error": 0}


def empty_findings() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in FINDING_DTYPES.items()})


def findings_frame(rows: dict[str, object] | pd.DataFrame) -> pd.DataFrame:
    """Coerce a stage's findings to the shared columns and dtypes (missing columns become NA)."""
    df = pd.DataFrame(rows)
    out = pd.DataFrame(index=df.index)
    for col, dtype in FINDING_DTYPES.items():
        if col in df:
            out[col] = df[col].astype(pd.api.types.pandas_dtype(dtype))
        else:
            out[col] = pd.Series(pd.NA, index=df.index, dtype=dtype)
    for col, dtype in TRAILING_DTYPES.items():
        if col in df:
            out[col] = df[col].astype(pd.api.types.pandas_dtype(dtype))
    return out.reset_index(drop=True)
