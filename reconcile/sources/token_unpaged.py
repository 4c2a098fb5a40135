"""`token`, unpaged: upstream new-api's `/api/log/token`, whose `data` is a plain list.

Read from new-api's code (model/log.go GetLogByTokenId): 2026 servers return the token's
newest `MaxRecentItems` (1,000) logs numbered by position (1..n); 2025 servers return all
of them, ids shown as id % 1024. Neither pages nor filters by time. The list is used only
when it provably covers the period: it holds fewer than 1,000 logs (so it is not capped), or
its oldest log is older than the period's start (newest first, so nothing of the period is
cut off; new-api writes created_at as it inserts, so ids follow time). Otherwise the period
cannot be read with an API key at all: exit 3, saying how to get an access token for
`/api/log/self`. Logs are identified by content (one answer, one
query: a multiset with nothing to deduplicate) and filtered to the period here.
"""

from __future__ import annotations

from typing import Any

from reconcile.core.period import Period
from reconcile.core.redact import Redactor
from reconcile.core.results import FetchResult, WindowRecord
from reconcile.errors import IncompatibleGateway, ReconcileError
from reconcile.settings import Settings
from reconcile.sources import engine as eng
from reconcile.sources.http import Client, Tally, new_http
from reconcile.sources.items import Seen, columns, logs_frame, to_int
from reconcile.sources.progress import ProgressHook

MAX_RECENT = 1000  # new-api's common.MaxRecentItems

HOW_TO_READ_A_MONTH = (
    "use an access token and /api/log/self instead: in new-api open the user settings "
    "(个人设置), generate an access token (生成系统访问令牌), and set "
    "RECONCILE_ACCESS_TOKEN to it and RECONCILE_USER_ID to the user id shown there "
    "(optionally RECONCILE_TOKEN_NAMES to the token names to reconcile)"
)


class CappedLogList(IncompatibleGateway):
    """The list holds only the newest logs and the period reaches further back."""


def fetch_unpaged(
    settings: Settings,
    period: Period,
    scopes: list[eng.Scope],
    redact: Redactor,
    progress: ProgressHook | None = None,
) -> FetchResult:
    url, base = eng.endpoint(settings.base_url, "/api/log/token")
    start, end = period.start_ts, eng.live_end(period)
    tally = Tally(progress, len(scopes))
    counts = eng.Counts()

    # ignored by servers that answer a list, asked as the paged API needs them
    params: dict[str, str | int] = {
        "p": 1,
        "page_size": eng.PAGE_SIZE,
        "start_timestamp": start,
        "end_timestamp": end,
        "type": 0,
    }

    async def read() -> list[tuple[eng.Scope, list[dict[str, Any]]]]:
        async with new_http(settings, url.scheme == "https") as http:
            client = Client(http, settings, redact, tally)
            lists = await eng.run_all(
                client.get(url, params, s.cred, f"{s.label}, /api/log/token") for s in scopes
            )
        return list(zip(scopes, lists, strict=True))

    try:
        answers = eng.run_sync(read)
    except BaseExceptionGroup as group:
        raise eng.redacted(_ours(eng.first_error(group)), redact) from None
    except ReconcileError as exc:
        raise eng.redacted(exc, redact) from None
    chunks, windows, schemes = [], [], []
    for scope, items in answers:
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise IncompatibleGateway(f"{scope.label}: /api/log/token's data is not a log list")
        created = [to_int(i.get("created_at"), "created_at", None, redact) for i in items]
        if created and min(created) > eng.MILLISECONDS:
            eng.check_units(min(created), start, end, scope.label)
        # newest first by id: the last one is the oldest returned; once it is older than the
        # period, every log of the period (written after it) is in the list
        if len(items) >= MAX_RECENT and (not created or created[-1] >= start):
            raise CappedLogList(
                f"{scope.label}: this gateway's /api/log/token returns only the newest "
                f"{len(items)} logs, without paging, and the oldest of them is inside the "
                f"period, so the period cannot be read completely with an API key; "
                + HOW_TO_READ_A_MONTH,
                source="token",
                key_ref=scope.ref,
            )
        page = eng.Page(len(items), len(items), items)
        schemes.append(eng.detect_scheme(page, 0, True))
        rows: list[Seen] = []
        for item, ts in zip(items, created, strict=True):
            if start <= ts <= end:
                log_id = item.get("id")
                rows.append((log_id if type(log_id) is int else 0, ts, item))
            else:
                counts.outside_window += 1
        rows.sort(key=lambda r: (r[1], r[0]))
        chunks.append(columns(rows, scope.ref, redact))
        windows.append(WindowRecord(scope.ref, start, end, len(rows), len(rows), 1, 1))
        tally.bump(keys_done=1, windows_total=1, windows_done=1, logs=len(rows))
    df, others = logs_frame(chunks)
    counts.other_types += others
    return eng.finish_result(
        period, df, windows, [s.ref for s in scopes], base, counts, "token", schemes
    )


def _ours(exc: BaseException) -> ReconcileError:
    if isinstance(exc, ReconcileError):
        return exc
    raise exc
