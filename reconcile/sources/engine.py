"""Read a period from a paged log API: every log once, none lost, proved complete, and fast.

The period [start, end) is queried as the inclusive range [start, end_ts - 1] (the gateway's
bounds are inclusive). Each scope (an API key, a token name, a user) is read on its own.

Which ids. The first answer shows the gateway's id scheme: real ids (stable), row positions
(1..n on each page) or id % 1024 (all below 1024, not descending). Stable ids are read with
`stable.StableRead` (windows of up to `window_rows` logs, pages in parallel, dedup by id);
any other scheme, or stable-looking ids that later collide, with `content.ContentRead`
(windows that fit one page, logs identified by content, multisets). See those modules.

Completeness never rests on one number the gateway gives: a window is done when its pages
agree with its `total` (the last page short, or the page after it empty), and a split window
whose parts do not shrink means the gateway ignores the time filters (fail fast, not recurse).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from reconcile.core.period import Period
from reconcile.core.redact import RedactingFilter, Redactor
from reconcile.core.results import FetchResult, WindowRecord
from reconcile.core.urls import origin
from reconcile.errors import GatewayError, IncompatibleGateway, InputError, ReconcileError
from reconcile.sources.http import Credential
from reconcile.sources.items import row_keys

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # the gateway's cap
MAX_WINDOW_ATTEMPTS = 6  # paging pass + repair rounds per window
#: A period that is not over is fetched up to this many seconds before now: the newest logs
#: are still being written (asynchronously, by new-api), and a window that keeps growing
#: could never be proved complete.
LIVE_MARGIN = 60
#: created_at values above this are milliseconds, not seconds (10^11 s is the year 5138).
MILLISECONDS = 10**11
SCHEME_RANK = {"stable": 0, "mod1024": 1, "position": 2}

T = TypeVar("T")


@dataclass(frozen=True)
class Api:
    """One paged log API of new-api."""

    source: str  # token | self | admin
    path: str  # /api/log/token, /api/log/self, /api/log/
    stat_path: str = ""  # /api/log/self/stat, /api/log/stat ('' when the API has none)
    #: ids all below 1024 on a gateway with few logs are real ids there; on /api/log/self of
    #: a 2025 server they are id % 1024. False: treat them as untrustworthy.
    trust_small_ids: bool = True


@dataclass(frozen=True)
class Scope:
    """What one independent read covers: a credential and the API's filters."""

    ref: str  # the `key_ref` column of its rows
    cred: Credential
    label: str  # for messages: "key key-1a2b3c4d", "user 7, token name 'ci'"
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    total: int
    page_size: int  # the page size the gateway applied (it caps what we ask)
    items: list[dict[str, Any]]


class Unpaged(Exception):
    """The endpoint answered a plain list of logs (no paging): a different API to read."""

    def __init__(self, items: list[Any]) -> None:
        super().__init__("unpaged")
        self.items = items


@dataclass
class Counts:
    duplicates: int = 0
    outside_window: int = 0
    other_types: int = 0


def endpoint(
    base_url: str | None, path: str, name: str = "RECONCILE_BASE_URL"
) -> tuple[httpx.URL, str]:
    """(endpoint URL, scheme://host[:port] for the record); the URL is checked, never echoed.

    A gateway served under a path (https://host/newapi) keeps it: every endpoint, the log
    pages and the price list alike, is read below it. `name`: the setting or option that gave
    the URL, for the one-line error."""
    if not base_url or not base_url.strip():
        raise InputError("no gateway URL: set RECONCILE_BASE_URL", field=name)
    try:
        parts = urlsplit(base_url.strip())
        base = origin(base_url.strip())
    except ValueError:
        raise InputError(
            "the gateway URL cannot be read (a bracket or port is malformed)", field=name
        ) from None
    if parts.scheme not in ("http", "https") or not base:
        raise InputError("the gateway URL must start with http:// or https://", field=name)
    if parts.query or parts.fragment:
        raise InputError("the gateway URL must not have a query string", field=name)
    try:
        return httpx.URL(base + parts.path.rstrip("/") + path), base
    except (httpx.InvalidURL, ValueError):
        raise InputError("the gateway URL is not a valid URL", field=name) from None


def parse_page(data: Any, p: int, asked: int) -> Page:
    """The `data` of a paged answer, checked; IncompatibleGateway says what was seen."""
    if isinstance(data, list):
        raise Unpaged(data)
    if not isinstance(data, dict):
        raise IncompatibleGateway("the gateway's answer has no `data` object")
    total, items = data.get("total"), data.get("items")
    if not isinstance(total, int) or isinstance(total, bool):
        raise IncompatibleGateway("the gateway's answer lacks an integer data.total")
    if items is None:
        if total > 0:
            raise IncompatibleGateway(
                f"the gateway answered total {total} with items: null on page {p}: it counts "
                "logs it does not return"
            )
        items = []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise IncompatibleGateway("the gateway's data.items holds something other than logs")
    page = data.get("page")
    if isinstance(page, int) and not isinstance(page, bool) and page != p:
        zero = " (it numbers pages from 0; new-api's p starts at 1)" if page == p - 1 else ""
        raise IncompatibleGateway(f"asked for page {p}, the gateway answered page {page}{zero}")
    if total > 0 and p == 1 and not items:
        raise IncompatibleGateway(
            f"page 1 came back empty though the gateway counts {total} logs: it seems to "
            "number pages from 0 (new-api's p starts at 1)"
        )
    size = data.get("page_size")
    if isinstance(size, int) and not isinstance(size, bool) and 0 < size <= asked:
        return Page(total, size, items)
    if p == 1 and 0 < len(items) < min(total, asked):
        raise IncompatibleGateway(
            f"page 1 holds {len(items)} of {total} logs though {asked} were asked for and "
            "data.page_size does not say it was capped: the gateway caps pages below "
            f"{asked} without saying so"
        )
    return Page(total, asked, items)


def check_units(created: int, start: int, end: int, where: str) -> None:
    """A created_at in milliseconds would drop every log as outside the window: say so."""
    if created > MILLISECONDS and start <= created // 1000 <= end + 1:
        raise IncompatibleGateway(
            f"{where}: the gateway's created_at values are in milliseconds (e.g. {created}), "
            "not unix seconds as new-api's are"
        )


def check_shrinks(parent: int, parts: list[int], where: str) -> None:
    """Parts of a window that each still hold the whole window's logs: filters are ignored."""
    if len(parts) >= 2 and parent > PAGE_SIZE and all(t >= parent for t in parts):
        raise IncompatibleGateway(
            f"{where}: the gateway ignores start_timestamp/end_timestamp: each of "
            f"{len(parts)} parts of the window reports the whole window's {parent} logs, so "
            "the period cannot be read by time"
        )


def split(start: int, end: int, parts: int) -> list[tuple[int, int]]:
    """[start, end] (inclusive seconds) cut into `parts` near-equal inclusive ranges."""
    n = end - start + 1
    parts = max(1, min(parts, n))
    bounds = [start + n * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(parts)]


def detect_scheme(page: Page, offset: int, trust_small: bool) -> str:
    """The id scheme a page shows: position (offset+1..), mod1024, or stable."""
    shown = [item.get("id") for item in page.items]
    ids = [i for i in shown if type(i) is int]
    if len(ids) < len(shown) or not ids:
        return "stable" if trust_small else "mod1024"
    if len(ids) >= 2 and ids == list(range(offset + 1, offset + len(ids) + 1)):
        return "position"
    if max(ids) < 1024:
        descending = all(a > b for a, b in itertools.pairwise(ids))
        if not descending or page.total >= 1024 or not trust_small:
            return "mod1024"
    return "stable"


async def run_all(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Run concurrently; the first failure cancels the rest (no retry storm after a bad key)."""
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(_as_coro(a)) for a in aws]
    except BaseExceptionGroup as group:
        raise first_error(group) from None  # one error, as a caller's `except` expects
    return [t.result() for t in tasks]


async def _as_coro(aw: Awaitable[T]) -> T:
    return await aw


def first_error(exc: BaseException) -> BaseException:
    """The first non-group exception inside (nested) exception groups, preferring ours."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = [first_error(e) for e in exc.exceptions]
        ours = [e for e in leaves if isinstance(e, ReconcileError | Unpaged)]
        real = [e for e in leaves if not isinstance(e, asyncio.CancelledError)]
        return (ours or real or leaves)[0]
    return exc


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even when called inside an event loop."""

    async def main() -> T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while fetching, restoring it afterwards.

    Parsing creates some twenty container objects per log, and all of them are kept: the
    collector would traverse them again and again as they accumulate (over a tenth of the CPU
    of a 100,000-log fetch, measured). Logs form no reference cycles.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def redacted_http_logs(redact: Redactor) -> Iterator[None]:
    """httpx logs every request URL at INFO; scrub keys from those records while we run."""
    names = ("httpx", "httpcore", "httpcore.http11", "httpcore.connection", "httpcore.proxy")
    filt = RedactingFilter(redact)
    for name in names:
        logging.getLogger(name).addFilter(filt)
    try:
        yield
    finally:
        for name in names:
            logging.getLogger(name).removeFilter(filt)


def live_end(period: Period) -> int:
    """The inclusive end to read: the period's, or a minute ago for a period not over."""
    end = period.end_ts - 1
    now_end = int(time.time()) - LIVE_MARGIN
    if end > now_end:
        end = max(now_end, period.start_ts - 1)
        log.warning(
            "the period %s is not over: fetching its logs up to %s; later ones are left for "
            "a later run",
            period.label,
            datetime.fromtimestamp(end, period.tz).isoformat(),
        )
    return end


def finish_result(
    period: Period,
    logs: Any,
    windows: list[WindowRecord],
    scopes: list[str],
    base: str,
    counts: Counts,
    source: str,
    schemes: list[str],
    fetched_at: datetime | None = None,
) -> FetchResult:
    """The FetchResult every source returns: windows in scope then time order, row keys set."""
    logs["row_key"] = row_keys(logs)
    order = {ref: i for i, ref in enumerate(scopes)}
    return FetchResult(
        period=period,
        logs=logs,
        windows=sorted(windows, key=lambda w: (order.get(w.key_ref, len(order)), w.start)),
        key_refs=list(scopes),
        fetched_at=fetched_at or datetime.now(UTC).replace(microsecond=0),
        base_url=base,
        duplicates=counts.duplicates,
        outside_window=counts.outside_window,
        other_types=counts.other_types,
        source=source,
        id_scheme=max(schemes or ["stable"], key=SCHEME_RANK.__getitem__),
    )


def redacted(exc: ReconcileError, redact: Redactor) -> ReconcileError:
    """The same error with its text scrubbed (a last line of defence)."""
    if isinstance(exc, InputError):
        return InputError(redact(exc.message), file=exc.file, line=exc.line, field=exc.field)
    if isinstance(exc, GatewayError):
        return exc.with_message(redact(str(exc)))
    return type(exc)(redact(str(exc)))


def window_text(period: Period, start: int, end: int) -> str:
    def when(ts: int) -> str:
        return datetime.fromtimestamp(ts, period.tz).isoformat()

    return f"window {when(start)} .. {when(end)}"


def pages_needed(total: int, size: int) -> int:
    return max(1, math.ceil(total / size))
