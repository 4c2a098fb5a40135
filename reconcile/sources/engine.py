"""Fetch a period's logs from `GET /api/log/token`: every log once, none lost, and fast.

How. The period [start, end) is queried as the inclusive range [start, end_ts - 1] (the
gateway's bounds are inclusive; a log at exactly `end` belongs to the next period). One probe
per key gives the period's `total`; the period is cut into time windows sized to hold at most
`settings.window_rows` logs, and a window still holding more is cut again, so offsets stay
shallow. Each window is paged with page_size 100, its pages requested concurrently through one
httpx.AsyncClient with at most `settings.concurrency` requests, and connections, in flight.

Completeness. A window is done when the distinct ids read equal the gateway's `total` and the
total did not move while paging. Offset paging on a live table shifts rows when logs are
inserted or deleted meanwhile (a row seen twice, another missed, and a count that can still
match), so a window whose total moved is read again as ranges that fit one page each, which
the gateway answers in one query; then it is recounted, and only ranges whose count or newest
logs disagree are read again. Bounded attempts; a window that cannot be made consistent is a
GatewayError naming the key ref and the window. What counts cannot reveal: a log inserted and
another deleted between the same two page requests of a window, which only happens in a period
still being written (a period that is not over is fetched up to a minute ago).

Secrets. The key travels in `Authorization: Bearer` (and, only for gateways that read nothing
else, in `?key=`). Every message this module builds is made from key refs, and httpx's request
log lines are redacted for the duration of the run.
"""

from __future__ import annotations

import asyncio
import email.utils
import gc
import json
import logging
import math
import operator
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from reconcile import __version__
from reconcile.core.period import Period
from reconcile.core.redact import RedactingFilter, Redactor
from reconcile.core.results import FetchResult, WindowRecord
from reconcile.core.schema import LOG_DTYPES, TYPE_NAMES
from reconcile.errors import GatewayError, InputError, ReconcileError
from reconcile.settings import ApiKey, Settings
from reconcile.sources.progress import FetchProgress, ProgressHook

log = logging.getLogger(__name__)

ENDPOINT = "/api/log/token"
PAGE_SIZE = 100  # the gateway's cap
BACKOFF_BASE = 0.25  # seconds before the first retry (then doubling, with jitter)
BACKOFF_CAP = 15.0
MAX_WINDOW_ATTEMPTS = 6  # paging pass + repair rounds per window
WINDOW_FILL = 0.75  # new windows aim at this fraction of settings.window_rows
#: A period that is not over is fetched up to this many seconds before now: the newest logs
#: are still being written (asynchronously, by new-api), and a window that keeps growing
#: could never be proved complete.
LIVE_MARGIN = 60

#: `success:false` messages meaning the key itself is wrong (new-api and its forks).
BAD_KEY_MESSAGES = frozenset(
    {"record not found", "无效的令牌", "令牌无效", "invalid token", "token not found"}
)
#: `success:false` messages meaning the query is malformed: retrying cannot help.
QUERY_ERRORS = frozenset(
    {"start_timestamp and end_timestamp are required", "p and page_size are required"}
)
KEY_REQUIRED = "key is required"

T = TypeVar("T")

# A log as read: (id, created_at, the gateway's item as it came). Items are normalised into
# LOG_DTYPES columns as each window completes (column by column: cheaper than row by row).
Seen = tuple[int, int, dict[str, Any]]
_OPTIONAL_INTS = ("quota", "prompt_tokens", "completion_tokens", "use_time", "channel")
_STRINGS = ("token_name", "username", "model_name", "group", "request_id", "content")
_FIELDS = ("type", *_OPTIONAL_INTS, *_STRINGS, "is_stream", "other")
_FIELDS_OF = operator.itemgetter(*_FIELDS)
_BY_TIME = operator.itemgetter(1, 0)  # a Seen's (created_at, id)


# --------------------------------------------------------------------------------------------
# entry point


def fetch_logs(
    settings: Settings,
    period: Period,
    keys: list[ApiKey],
    progress: ProgressHook | None = None,
) -> FetchResult:
    """All logs of `period` for each key, deduplicated by id, each row tagged with its key ref.

    Raises InputError for missing/invalid configuration, GatewayError when the gateway cannot
    be read completely (after bounded retries) or rejects a key.
    """
    if not keys:
        raise InputError(
            "no API key configured: set RECONCILE_API_KEYS", field="RECONCILE_API_KEYS"
        )
    endpoint, base = _endpoint(settings.base_url)
    redact = Redactor(keys)
    fetched_at = datetime.now(UTC).replace(microsecond=0)
    run = _Run(settings, period, keys, endpoint, redact, progress)
    with _redacted_http_logs(redact), _gc_paused():
        try:
            result = _run_sync(run.fetch)
        except InputError as exc:
            raise InputError(
                redact(exc.message), file=exc.file, line=exc.line, field=exc.field
            ) from None
        except ReconcileError as exc:
            raise type(exc)(redact(str(exc))) from None
    logs, counts = result
    return FetchResult(
        period=period,
        logs=logs,
        windows=sorted(run.windows, key=lambda w: (_key_order(keys, w.key_ref), w.start)),
        key_refs=[k.ref for k in keys],
        fetched_at=fetched_at,
        base_url=base,
        duplicates=counts.duplicates,
        outside_window=counts.outside_window,
        other_types=counts.other_types,
    )


def _key_order(keys: list[ApiKey], ref: str) -> int:
    return next((i for i, k in enumerate(keys) if k.ref == ref), len(keys))


def _endpoint(base_url: str | None) -> tuple[str, str]:
    """(endpoint URL, scheme://host[:port] for the record); the URL is checked, never echoed."""
    field_name = "RECONCILE_BASE_URL"
    if not base_url or not base_url.strip():
        raise InputError("no gateway URL: set RECONCILE_BASE_URL", field=field_name)
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError("the gateway URL must start with http:// or https://", field=field_name)
    if parts.query or parts.fragment:
        raise InputError("the gateway URL must not have a query string", field=field_name)
    try:
        port = parts.port
    except ValueError:
        raise InputError("the gateway URL has an invalid port", field=field_name) from None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    return origin + parts.path.rstrip("/") + ENDPOINT, origin


def _run_sync(factory: Callable[[], Awaitable[T]]) -> T:
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
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while fetching, restoring it afterwards.

    Parsing creates some twenty container objects per log, and all of them are kept: the
    collector would traverse them again and again as they accumulate (over a tenth of the CPU
    of a 100,000-log fetch, measured). Logs form no reference cycles, so nothing is lost by
    collecting later.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def _redacted_http_logs(redact: Redactor) -> Iterator[None]:
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


# --------------------------------------------------------------------------------------------
# one request, with retries


class _Retry(Exception):
    """A transient failure: worth another attempt after a pause."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Fatal(Exception):
    """A failure retrying cannot fix; reported with the key ref and window it happened in."""


@dataclass(frozen=True)
class _Page:
    total: int
    page_size: int  # the page size the gateway applied (it caps what we ask)
    items: list[dict[str, Any]]


class _Tally:
    """Cumulative progress for the hook; the fetcher runs on one event loop, so no locking."""

    def __init__(self, hook: ProgressHook | None, keys: int) -> None:
        self._hook = hook
        self.now = FetchProgress(keys_total=keys)

    def bump(self, **delta: int) -> None:
        self.now = replace(self.now, **{k: getattr(self.now, k) + v for k, v in delta.items()})
        if self._hook is not None:
            self._hook(self.now)


class _ConnectionShards(httpx.AsyncBaseTransport):
    """`n` one-connection pools to the gateway; each request goes out on a free one.

    The same at most `n` keep-alive connections as one httpx pool of `n`, for far less CPU:
    httpcore's pool re-examines every connection it holds (a socket poll per idle one) each
    time a request starts or ends, so its bookkeeping per request grows with `n`, and at 20
    connections it costs more than the requests themselves (measured in
    benchmarks/bench_fetch.py). Here each request touches one pool of one. The caller keeps at
    most `n` requests in flight, so a free pool is always at hand.
    """

    def __init__(self, n: int, https: bool) -> None:
        # One TLS context for all pools (building one reads the CA bundle: 40 ms). A plain-http
        # gateway gets a context that trusts no certificate, never used: requests only go to
        # the gateway's own address, redirects are not followed.
        tls = httpx.create_ssl_context() if https else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.tls = tls
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._all = [httpx.AsyncHTTPTransport(verify=tls, limits=one) for _ in range(n)]
        self._free: asyncio.Queue[httpx.AsyncHTTPTransport] = asyncio.Queue()
        for pool in self._all:
            self._free.put_nowait(pool)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool = await self._free.get()
        try:
            resp = await pool.handle_async_request(request)
            body = await resp.aread()  # pages are small: read whole, the connection is free
        finally:
            self._free.put_nowait(pool)
        return httpx.Response(
            resp.status_code, headers=resp.headers, content=body, extensions=resp.extensions
        )

    async def aclose(self) -> None:
        for pool in self._all:
            await pool.aclose()


class _Client:
    """GETs pages of /api/log/token: classifies answers, retries what is transient."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoint: str,
        settings: Settings,
        redact: Redactor,
        tally: _Tally,
    ) -> None:
        self._http = http
        self._endpoint = httpx.URL(endpoint)  # parsed once, not per request
        self._settings = settings
        self._redact = redact
        self._tally = tally
        self._slots = asyncio.Semaphore(settings.concurrency)
        self.key_in_query = False  # set when the gateway says "key is required" to a header
        self.requests = 0

    async def page(self, key: ApiKey, start: int, end: int, p: int, where: str) -> _Page:
        """Page `p` of [start, end], retrying transient failures within count and time budgets."""
        failures = 0
        slept = 0.0
        budget = self._settings.retry_budget
        while True:
            try:
                async with self._slots:
                    page = await self._once(key, start, end, p)
            except _Fatal as exc:
                raise GatewayError(f"{where}: {exc}") from None
            except _Retry as exc:
                failures += 1
                if failures > self._settings.max_retries:
                    raise GatewayError(
                        f"{where}: {exc.reason}; gave up after {_attempts(failures)}"
                    ) from None
                delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1))
                delay *= random.uniform(0.5, 1.0)
                if exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                if slept + delay > budget:
                    raise GatewayError(
                        f"{where}: {exc.reason}; gave up after {_attempts(failures)} "
                        f"(retry budget {budget:g}s)"
                    ) from None
                log.warning(
                    "%s: %s; retry %d/%d in %.2fs",
                    where,
                    exc.reason,
                    failures,
                    self._settings.max_retries,
                    delay,
                )
                self._tally.bump(retries=1)
                await asyncio.sleep(delay)
                slept += delay
                continue
            self._tally.bump(pages=1)
            return page

    async def _once(self, key: ApiKey, start: int, end: int, p: int) -> _Page:
        secret = key.secret.get_secret_value()
        params: dict[str, str | int] = {
            "p": p,
            "page_size": PAGE_SIZE,
            "start_timestamp": start,
            "end_timestamp": end,
            "type": 0,
        }
        in_query = self.key_in_query
        if in_query:
            params = {"key": secret, **params}
        self.requests += 1
        try:
            resp = await self._http.get(
                self._endpoint, params=params, headers={"Authorization": f"Bearer {secret}"}
            )
        except httpx.TimeoutException as exc:
            raise _Retry(f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            detail = self._redact(str(exc)) or "no detail"
            raise _Retry(f"connection failed ({type(exc).__name__}: {detail})") from None

        status = resp.status_code
        body = _json_body(resp.content)
        message = ""
        if isinstance(body, dict) and body.get("message") is not None:
            message = self._redact(str(body["message"]))[:300]
        said = f": {message}" if message else ""
        if status == 429:
            raise _Retry("HTTP 429 (rate limited)", _retry_after(resp.headers.get("Retry-After")))
        if status >= 500 or status == 408:
            raise _Retry(f"HTTP {status}{said}", _retry_after(resp.headers.get("Retry-After")))
        if status in (401, 403):
            raise _rejected(key, f"HTTP {status}{said}")
        if status == 404:
            raise _Fatal(
                f"HTTP 404: the gateway has no {ENDPOINT} (is RECONCILE_BASE_URL its address?)"
            )
        if 300 <= status < 400:
            raise _Fatal(
                f"HTTP {status}: the gateway redirects; set RECONCILE_BASE_URL to the final address"
            )
        if status != 200:
            raise _Fatal(f"HTTP {status} from the gateway{said}")
        if body is None:
            raise _Retry("the response body is truncated or not JSON")
        if not isinstance(body, dict) or "success" not in body:
            raise _Fatal("the gateway's answer is not new-api's {success, message, data}")
        if body.get("success") is not True:
            low = message.strip().lower()
            if low == KEY_REQUIRED and not in_query:
                if not self.key_in_query:
                    log.info("the gateway reads the key only from the query string; using it")
                self.key_in_query = True
                return await self._once(key, start, end, p)
            if low in BAD_KEY_MESSAGES:
                raise _rejected(key, message)
            if low in QUERY_ERRORS or low == KEY_REQUIRED:
                raise _Fatal(f"the gateway refused the query: {message}")
            raise _Retry(f"the gateway answered success:false: {message or '(no message)'}")
        return _parse_page(body.get("data"), p)


def _attempts(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def _rejected(key: ApiKey, detail: str) -> GatewayError:
    return GatewayError(
        f"the gateway rejected API key {key.ref} ({detail}); check that this key is right "
        "and still exists (it was not retried)"
    )


def _json_body(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (a number, or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def _parse_page(data: Any, p: int) -> _Page:
    if isinstance(data, list):
        raise _Fatal(
            "this gateway's /api/log/token returns all of a key's logs without paging or time "
            "filters (an old new-api version); it cannot be read completely for a period"
        )
    if not isinstance(data, dict):
        raise _Fatal("the gateway's answer has no `data` object")
    total, items = data.get("total"), data.get("items")
    if items is None:
        items = []
    if not isinstance(total, int) or isinstance(total, bool) or not isinstance(items, list):
        raise _Fatal("the gateway's answer lacks data.total or data.items")
    if not all(isinstance(i, dict) for i in items):
        raise _Fatal("the gateway's data.items holds something other than log objects")
    page = data.get("page")
    if isinstance(page, int) and not isinstance(page, bool) and page != p:
        raise _Fatal(f"asked for page {p}, the gateway answered page {page}")
    size = data.get("page_size")
    applied = size if isinstance(size, int) and 0 < size <= PAGE_SIZE else PAGE_SIZE
    return _Page(total, applied, items)


# --------------------------------------------------------------------------------------------
# normalising items


def _columns(logs: list[Seen], key_ref: str) -> dict[str, Any]:
    """The LOG_DTYPES columns of some logs, normalised, as arrays (NumPy for numbers, Arrow
    for text), ready for _logs_frame to put together.

    Called as each window completes, while its items are still warm in the CPU cache; the
    fields are read with one itemgetter per item and transposed with zip (for 100,000 logs
    170 ms against 210 ms for one list comprehension per field, measured). Absent or null
    fields of older servers get defaults ('' / 0 / False); `other` stays the raw string (a
    JSON object from newer servers is kept as its JSON text).
    """
    items = [log[2] for log in logs]
    try:
        rows = list(map(_FIELDS_OF, items))
    except KeyError:  # an older server that leaves fields out
        rows = [tuple(item.get(name) for name in _FIELDS) for item in items]
    fields: dict[str, Sequence[Any]] = {}
    if rows:
        fields = dict(zip(_FIELDS, zip(*rows, strict=True), strict=True))
    ids = [log[0] for log in logs]
    cols: dict[str, Any] = {
        "id": ids,
        "created_at": [log[1] for log in logs],
        "key_ref": [key_ref] * len(logs),
    }
    for name in ("type", *_OPTIONAL_INTS):
        values = fields.get(name, ())
        if not _all_of(values, int):
            values = [
                _int(v, name, i) if v is not None or name == "type" else 0
                for v, i in zip(values, ids, strict=True)
            ]
        cols[name] = values
    for name in _STRINGS:
        values = fields.get(name, ())
        cols[name] = values if _all_of(values, str) else [_text(v) for v in values]
    values = fields.get("is_stream", ())
    cols["is_stream"] = values if _all_of(values, bool) else [_bool(v) for v in values]
    values = fields.get("other", ())
    cols["other"] = values if _all_of(values, str) else [_text(v, True) for v in values]
    return {
        name: pa.array(cols[name], type=pa.large_string())
        if dtype == "string"
        else np.array(cols[name], dtype=dtype)
        for name, dtype in LOG_DTYPES.items()
    }


def _logs_frame(chunks: list[dict[str, Any]]) -> tuple[pd.DataFrame, int]:
    """The kept logs as a LOG_DTYPES frame ordered by (created_at, id), and how many were
    of other types (manage, system, ...) and left out. `chunks` come from _columns.

    Text stays in its per-window Arrow chunks (no copy). Rows are reordered only when they
    are not in order already: one key's windows, each sorted and put together in time order,
    are; several keys' interleave.
    """
    merged = {name: _merged(chunks, name) for name in LOG_DTYPES}
    ids, created, types = merged["id"], merged["created_at"], merged["type"]
    kept = np.flatnonzero(np.isin(types, list(TYPE_NAMES)))
    order = kept[np.lexsort((ids[kept], created[kept]))]
    shuffled = len(order) < len(ids) or not np.array_equal(order, np.arange(len(order)))
    columns: dict[str, pd.Series] = {}
    for name, dtype in LOG_DTYPES.items():
        values = merged[name]
        if shuffled:
            values = values.take(order) if dtype == "string" else values[order]
        if dtype == "string":
            values = pd.arrays.ArrowStringArray(values)  # pandas' "string", as it is
        columns[name] = pd.Series(values, copy=False)
    return pd.DataFrame(columns), len(types) - len(kept)


def _merged(chunks: list[dict[str, Any]], name: str) -> Any:
    """Column `name` of all chunks: one NumPy array, or one chunked Arrow array for text."""
    dtype = LOG_DTYPES[name]
    parts = [chunk[name] for chunk in chunks]
    if dtype == "string":
        return pa.chunked_array(parts, type=pa.large_string())
    return np.concatenate(parts) if parts else np.array([], dtype=dtype)


def _all_of(values: Sequence[Any], kind: type) -> bool:
    return set(map(type, values)) <= {kind}


def _int(value: Any, name: str, log_id: int | None) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    which = "a log" if log_id is None else f"log {log_id}"
    shown = "missing" if value is None else f"not an integer ({str(value)[:40]!r})"
    raise GatewayError(f"{which} from the gateway has `{name}` {shown}")


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _text(value: Any, keep_json: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if keep_json and isinstance(value, dict | list):
        # newer servers send `other` as a JSON object rather than a string: keep it as text
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


# --------------------------------------------------------------------------------------------
# windows


@dataclass
class _Window:
    start: int
    end: int
    rows: dict[int, Seen] = field(default_factory=dict)
    total: int = 0
    pages: int = 0
    attempts: int = 1


@dataclass
class _Counts:
    duplicates: int = 0
    outside_window: int = 0
    other_types: int = 0


def _split(start: int, end: int, parts: int) -> list[tuple[int, int]]:
    """[start, end] (inclusive seconds) cut into `parts` near-equal inclusive ranges."""
    n = end - start + 1
    parts = max(1, min(parts, n))
    bounds = [start + n * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(parts)]


async def _gather(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Run concurrently; the first failure cancels the rest (no retry storm after a bad key)."""
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(_as_coro(a)) for a in aws]
    return [t.result() for t in tasks]


async def _as_coro(aw: Awaitable[T]) -> T:
    return await aw


def _first_error(exc: BaseException) -> BaseException:
    """The first non-group exception inside (nested) exception groups, preferring ours."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = [_first_error(e) for e in exc.exceptions]
        ours = [e for e in leaves if isinstance(e, ReconcileError)]
        return (ours or leaves)[0]
    return exc


class _Run:
    """One fetch: all keys, one HTTP client, one concurrency limit."""

    def __init__(
        self,
        settings: Settings,
        period: Period,
        keys: list[ApiKey],
        endpoint: str,
        redact: Redactor,
        progress: ProgressHook | None,
    ) -> None:
        self.settings = settings
        self.period = period
        self.keys = keys
        self.endpoint = endpoint
        self.redact = redact
        self.tally = _Tally(progress, len(keys))
        self.windows: list[WindowRecord] = []
        self.counts = _Counts()
        self.client: _Client | None = None
        self.end = period.end_ts - 1  # inclusive: a log at exactly period.end is the next one's
        live_end = int(time.time()) - LIVE_MARGIN
        if self.end > live_end:
            self.end = max(live_end, period.start_ts - 1)
            log.warning(
                "the period %s is not over: fetching its logs up to %s; later ones are left "
                "for a later run",
                period.label,
                self.when(self.end),
            )

    async def fetch(self) -> tuple[pd.DataFrame, _Counts]:
        started = time.monotonic()
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(self.settings.timeout),
            transport=_ConnectionShards(
                self.settings.concurrency, self.endpoint.startswith("https:")
            ),
            headers={"User-Agent": f"reconcile/{__version__}", "Accept": "application/json"},
            follow_redirects=False,
        ) as http:
            self.client = _Client(http, self.endpoint, self.settings, self.redact, self.tally)
            fetchers = [_KeyFetch(self, key) for key in self.keys]
            try:
                await _gather(f.run() for f in fetchers)
            except BaseExceptionGroup as group:
                raise _first_error(group) from None
        log.info(
            "fetched %d keys in %.2fs: %d requests, %d windows",
            len(self.keys),
            time.monotonic() - started,
            self.client.requests,
            len(self.windows),
        )
        return self._frame(fetchers), self.counts

    def _frame(self, fetchers: list[_KeyFetch]) -> pd.DataFrame:
        if len(fetchers) > 1:
            ids = [log_id for f in fetchers for log_id in f.rows]
            if len(set(ids)) < len(ids):
                self._same_id_under_two_keys(fetchers)
        # each key's windows in time order: one key's logs are then in order already
        chunks = [f.columns[start] for f in fetchers for start in sorted(f.columns)]
        df, others = _logs_frame(chunks)
        self.counts.other_types += others
        return df

    @staticmethod
    def _same_id_under_two_keys(fetchers: list[_KeyFetch]) -> None:
        owner: dict[int, tuple[str, Seen]] = {}
        for f in fetchers:
            for log_id, log in f.rows.items():
                first = owner.setdefault(log_id, (f.key.ref, log))
                if first[0] == f.key.ref:
                    continue
                if _identity(first[1]) == _identity(log):
                    raise InputError(
                        f"keys {first[0]} and {f.key.ref} return the same log {log_id}: "
                        "they are the same token; configure each token once",
                        field="RECONCILE_API_KEYS",
                    )
                raise _masked_ids(f"keys {first[0]} and {f.key.ref}", log_id)

    def when(self, ts: int) -> str:
        return datetime.fromtimestamp(ts, self.period.tz).isoformat()


def _identity(log: Seen) -> tuple[Any, ...]:
    """What must agree between two answers carrying the same id for them to be one log."""
    item = log[2]
    return (log[1], *(item.get(k) for k in ("type", "quota", "model_name", "token_name")))


def _masked_ids(where: str, log_id: int) -> GatewayError:
    return GatewayError(
        f"{where}: the gateway returned different logs under the same id {log_id}: this gateway "
        "version rewrites log ids for token users (row numbers or id % 1024), so logs "
        "cannot be told apart or matched to a ledger"
    )


class _KeyFetch:
    """The windows of one key, fetched and proved complete."""

    def __init__(self, run: _Run, key: ApiKey) -> None:
        self.job = run
        self.key = key
        self.rows: dict[int, Seen] = {}
        self.columns: dict[int, dict[str, Any]] = {}  # window start -> its _columns
        self._fill = max(PAGE_SIZE, int(run.settings.window_rows * WINDOW_FILL))

    @property
    def client(self) -> _Client:
        assert self.job.client is not None
        return self.job.client

    def where(self, start: int, end: int, p: int | None = None) -> str:
        page = f", page {p}" if p is not None else ""
        return f"key {self.key.ref}, window {self.job.when(start)} .. {self.job.when(end)}{page}"

    async def get(self, start: int, end: int, p: int) -> _Page:
        return await self.client.page(self.key, start, end, p, self.where(start, end, p))

    async def run(self) -> None:
        start, end = self.job.period.start_ts, self.job.end
        if end < start:
            self.job.tally.bump(keys_done=1)
            return
        first = await self.get(start, end, 1)  # one request validates the key before fan-out
        if first.total <= self.job.settings.window_rows or start == end:
            self.job.tally.bump(windows_total=1)
            await self.window(start, end, first)
        else:
            parts = _split(start, end, math.ceil(first.total / self._fill))
            self.job.tally.bump(windows_total=len(parts))
            await _gather(self.window(a, b) for a, b in parts)
        self.job.tally.bump(keys_done=1)
        log.info("key %s: %d logs", self.key.ref, len(self.rows))

    async def window(self, start: int, end: int, first: _Page | None = None) -> None:
        if first is None:
            first = await self.get(start, end, 1)
        if first.total > self.job.settings.window_rows:
            if end > start:
                parts = _split(start, end, max(2, math.ceil(first.total / self._fill)))
                self.job.tally.bump(windows_total=len(parts) - 1)
                await _gather(self.window(a, b) for a, b in parts)
                return
            log.warning(
                "%s: %d logs within one second; paging it with deep offsets",
                self.where(start, end),
                first.total,
            )
        w = _Window(start, end, total=first.total, pages=1)
        self.ingest(w, first, 1, count=True)
        pages = math.ceil(first.total / first.page_size)
        rest = await _gather(self.get(start, end, p) for p in range(2, pages + 1))
        totals = {first.total}
        for p, page in enumerate(rest, start=2):
            w.pages += 1
            totals.add(page.total)
            self.ingest(w, page, p, count=True)
        if len(totals) > 1 or len(w.rows) != first.total:
            log.info(
                "%s: rows moved while paging (totals %s, %d ids read); repairing",
                self.where(start, end),
                sorted(totals),
                len(w.rows),
            )
            await self.repair(w)
        self.finish(w)

    async def repair(self, w: _Window) -> None:
        """Re-read the window until the gateway's answer and the rows held agree (bounded).

        Rows moved while the window was paged, so what paging read proves nothing: a log
        deleted meanwhile shifts the rows after it up one place, so one is skipped while the
        deleted one was already read, and the count still matches. The first round therefore
        re-reads the whole window as ranges small enough for one answer each (one query:
        nothing shifts within it). Later rounds recount and re-read only ranges that disagree:
        after a read without offsets, a deletion shows in the count and an insertion among the
        newest logs of its range (ids only grow, and the gateway answers newest first).
        """
        trust = False
        while True:
            if w.attempts >= MAX_WINDOW_ATTEMPTS:
                raise GatewayError(
                    f"{self.where(w.start, w.end)}: the logs kept changing while they were read "
                    f"({w.attempts} attempts; last count {w.total}, {len(w.rows)} ids read); "
                    "re-run when the period is closed"
                )
            w.attempts += 1
            page = await self.get(w.start, w.end, 1)
            w.pages += 1
            w.total = page.total
            if await self.settle(w, w.start, w.end, page, trust):
                return
            trust = True

    async def settle(self, w: _Window, start: int, end: int, page: _Page, trust: bool) -> bool:
        """Make w's rows in [start, end] agree with the gateway, given page 1 of that range.

        With `trust`, a range whose count and newest logs match the rows held is kept as it
        is; without, every range is read again. True when everything already agreed.
        """
        if page.total <= page.page_size:
            # the whole range came in one answer: authoritative, take it as it is
            self.replace(w, start, end, [page])
            return len(page.items) == page.total
        if trust and self.agrees(w, start, end, page):
            return True
        if start == end:
            pages = math.ceil(page.total / page.page_size)
            rest = await _gather(self.get(start, end, p) for p in range(2, pages + 1))
            w.pages += len(rest)
            self.replace(w, start, end, [page, *rest])
            return False
        mid = (start + end) // 2
        left, right = await _gather([self.get(start, mid, 1), self.get(mid + 1, end, 1)])
        w.pages += 2
        await _gather(
            [self.settle(w, start, mid, left, trust), self.settle(w, mid + 1, end, right, trust)]
        )
        return False

    @staticmethod
    def agrees(w: _Window, start: int, end: int, page: _Page) -> bool:
        """The rows held in [start, end] number page.total and include every log on page 1."""
        held = {log_id for log_id, r in w.rows.items() if start <= r[1] <= end}
        shown = {_int(item.get("id"), "id", None) for item in page.items}
        return len(held) == page.total and shown <= held

    def replace(self, w: _Window, start: int, end: int, pages: list[_Page]) -> None:
        for log_id in [i for i, r in w.rows.items() if start <= r[1] <= end]:
            del w.rows[log_id]
        for p, page in enumerate(pages, start=1):
            self.ingest(w, page, p, count=False, bounds=(start, end))

    def ingest(
        self,
        w: _Window,
        page: _Page,
        p: int,
        *,
        count: bool,
        bounds: tuple[int, int] | None = None,
    ) -> None:
        """Add a page's rows to the window: outside rows dropped, repeats kept once."""
        lo, hi = bounds or (w.start, w.end)
        offset = (p - 1) * page.page_size
        if len(page.items) >= 2 and [i.get("id") for i in page.items] == list(
            range(offset + 1, offset + len(page.items) + 1)
        ):
            raise GatewayError(
                f"{self.where(w.start, w.end, p)}: the gateway numbers logs by their position "
                "on the page instead of returning log ids; logs cannot be matched by id"
            )
        counts = self.job.counts
        rows = w.rows
        for item in page.items:
            log_id, created = item.get("id"), item.get("created_at")
            if type(log_id) is not int:
                log_id = _int(log_id, "id", None)
            if type(created) is not int:
                created = _int(created, "created_at", log_id)
            if not lo <= created <= hi:
                if count:
                    counts.outside_window += 1
                continue
            log = (log_id, created, item)
            old = rows.get(log_id)
            if old is not None:
                if _identity(old) != _identity(log):
                    raise _masked_ids(self.where(w.start, w.end, p), log_id)
                if count:
                    counts.duplicates += 1
            rows[log_id] = log

    def finish(self, w: _Window) -> None:
        for log_id, log in w.rows.items():
            old = self.rows.get(log_id)
            if old is not None and _identity(old) != _identity(log):
                raise _masked_ids(f"key {self.key.ref}", log_id)
            self.rows[log_id] = log
        logs = sorted(w.rows.values(), key=_BY_TIME)
        self.columns[w.start] = _columns(logs, self.key.ref)
        self.job.windows.append(
            WindowRecord(
                key_ref=self.key.ref,
                start=w.start,
                end=w.end,
                total=w.total,
                ids=len(w.rows),
                pages=w.pages,
                attempts=w.attempts,
            )
        )
        self.job.tally.bump(windows_done=1, logs=len(w.rows))
