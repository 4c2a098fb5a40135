"""One GET to a new-api log endpoint: retries, deadlines, and what each answer means.

Every log API (token, self, admin, their stat endpoints) answers in new-api's envelope
`{success, message, data}`, behind proxies that add 401/429/5xx of their own. This module
turns an answer into `data` or into a typed failure, so the engine never looks at HTTP.

- Transient failures (429, 5xx, 408, timeouts, cut bodies) are retried with jittered
  exponential backoff, within a count (`max_retries`) and a time budget (`retry_budget`).
- `RECONCILE_TIMEOUT` is a deadline for the whole request, not for each read: a gateway that
  drips its body one byte at a time cannot hold a request longer than that.
- A compressed answer (`Content-Encoding: gzip`, as nginx and CDNs send) is decoded once.
- Messages are built from credential refs and the gateway's text redacted before it is cut.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import ssl
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from reconcile.core.redact import Redactor
from reconcile.errors import CredentialsRejected, GatewayError, IncompatibleGateway
from reconcile.settings import Settings
from reconcile.sources.progress import FetchProgress, ProgressHook

log = logging.getLogger("reconcile.sources.engine")

BACKOFF_BASE = 0.25  # seconds before the first retry (then doubling, with jitter)
BACKOFF_CAP = 15.0

#: `success:false` messages meaning the credential itself is wrong (new-api and its forks).
BAD_KEY_MESSAGES = frozenset(
    {"record not found", "无效的令牌", "令牌无效", "invalid token", "token not found"}
)
#: `success:false` messages meaning the query is malformed: retrying cannot help.
QUERY_ERRORS = frozenset(
    {"start_timestamp and end_timestamp are required", "p and page_size are required"}
)
KEY_REQUIRED = "key is required"
#: new-api's auth middleware (middleware/auth.go): 200 or 401 with one of these.
_AUTH_WORDS = ("无权进行此操作", "access token", "未登录", "权限不足", "用户已被")


@dataclass(frozen=True)
class Credential:
    """How one scope authenticates: headers carrying the secret, and which setting it is."""

    ref: str  # safe to print: key-xxxxxxxx / token-xxxxxxxx
    setting: str  # RECONCILE_API_KEYS | RECONCILE_ACCESS_TOKEN
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    query_key: str = field(default="", repr=False)  # for gateways that read only `?key=`
    what: str = "API key"


class Retry(Exception):
    """A transient failure: worth another attempt after a pause."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Fatal(Exception):
    """A failure retrying cannot fix; reported with the scope and window it happened in."""

    def __init__(self, reason: str, kind: type[GatewayError] = GatewayError) -> None:
        super().__init__(reason)
        self.kind = kind


class Tally:
    """Cumulative progress for the hook; the fetcher runs on one event loop, so no locking."""

    def __init__(self, hook: ProgressHook | None, keys: int) -> None:
        self._hook = hook
        self.now = FetchProgress(keys_total=keys)

    def bump(self, **delta: int) -> None:
        self.now = replace(self.now, **{k: getattr(self.now, k) + v for k, v in delta.items()})
        if self._hook is not None:
            self._hook(self.now)


class ConnectionShards(httpx.AsyncBaseTransport):
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
        # gateway gets a context that trusts no certificate, never used.
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
            # The raw bytes, still encoded: the client decodes Content-Encoding once. (Reading
            # them decoded here and passing the header on made the client decode twice.)
            body = b"".join([chunk async for chunk in resp.aiter_raw()])
            await resp.aclose()
        finally:
            self._free.put_nowait(pool)
        return httpx.Response(
            resp.status_code, headers=resp.headers, content=body, extensions=resp.extensions
        )

    async def aclose(self) -> None:
        for pool in self._all:
            await pool.aclose()


def new_http(settings: Settings, https: bool) -> httpx.AsyncClient:
    from reconcile import __version__

    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout),
        transport=ConnectionShards(settings.concurrency, https),
        headers={"User-Agent": f"reconcile/{__version__}", "Accept": "application/json"},
        follow_redirects=False,
    )


class Client:
    """GETs of one gateway's log API: classifies answers, retries what is transient."""

    def __init__(
        self, http: httpx.AsyncClient, settings: Settings, redact: Redactor, tally: Tally
    ) -> None:
        self._http = http
        self._settings = settings
        self._redact = redact
        self._tally = tally
        self._slots = asyncio.Semaphore(settings.concurrency)
        self.key_in_query = False  # set when the gateway says "key is required" to a header
        self.requests = 0

    async def get(
        self, url: httpx.URL, params: dict[str, str | int], cred: Credential, where: str
    ) -> Any:
        """The `data` of one answer, retrying transient failures within count and time budgets."""
        failures = 0
        slept = 0.0
        budget = self._settings.retry_budget
        while True:
            try:
                async with self._slots:
                    data = await self._once(url, params, cred)
            except Fatal as exc:
                raise exc.kind(f"{where}: {exc}", key_ref=cred.ref, window=where) from None
            except Retry as exc:
                failures += 1
                gave_up = f"{where}: {exc.reason}; gave up after {_attempts(failures)}"
                if failures > self._settings.max_retries:
                    raise GatewayError(gave_up, key_ref=cred.ref, window=where) from None
                delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1))
                delay *= random.uniform(0.5, 1.0)
                if exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                if slept + delay > budget:
                    raise GatewayError(
                        f"{gave_up} (retry budget {budget:g}s)", key_ref=cred.ref, window=where
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
            return data

    async def _once(self, url: httpx.URL, params: dict[str, str | int], cred: Credential) -> Any:
        in_query = self.key_in_query and bool(cred.query_key)
        if in_query:
            params = {"key": cred.query_key, **params}
        self.requests += 1
        timeout = self._settings.timeout
        try:
            async with asyncio.timeout(timeout):
                resp = await self._http.get(url, params=params, headers=cred.headers)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise Retry(f"no complete answer within {timeout:g}s ({type(exc).__name__})") from None
        except httpx.DecodingError:
            raise Retry("the response body could not be decoded (Content-Encoding)") from None
        except httpx.TransportError as exc:
            detail = self._redact(str(exc)) or "no detail"
            raise Retry(f"connection failed ({type(exc).__name__}: {detail})") from None

        status = resp.status_code
        body = _json_body(resp.content)
        message = ""
        if isinstance(body, dict) and body.get("message") is not None:
            message = self._redact(str(body["message"]))[:300]
        said = f": {message}" if message else ""
        if status == 429:
            raise Retry("HTTP 429 (rate limited)", retry_after(resp.headers.get("Retry-After")))
        if status >= 500 or status == 408:
            raise Retry(f"HTTP {status}{said}", retry_after(resp.headers.get("Retry-After")))
        if status in (401, 403):
            raise rejected(cred, f"HTTP {status}{said}")
        if status == 404:
            raise Fatal(
                f"HTTP 404: the gateway has no {url.path} (is RECONCILE_BASE_URL its address?)",
                IncompatibleGateway,
            )
        if 300 <= status < 400:
            raise Fatal(
                f"HTTP {status}: the gateway redirects; set RECONCILE_BASE_URL to the final address"
            )
        if status != 200:
            raise Fatal(f"HTTP {status} from the gateway{said}")
        if body is None:
            raise Retry("the response body is truncated or not JSON")
        if not isinstance(body, dict) or "success" not in body:
            raise Fatal(
                "the gateway's answer is not new-api's {success, message, data}",
                IncompatibleGateway,
            )
        if body.get("success") is not True:
            low = message.strip().lower()
            if low == KEY_REQUIRED and cred.query_key and not in_query:
                if not self.key_in_query:
                    log.info("the gateway reads the key only from the query string; using it")
                self.key_in_query = True
                return await self._once(url, params, cred)
            if low in BAD_KEY_MESSAGES or any(w in low for w in _AUTH_WORDS):
                raise rejected(cred, message)
            if low in QUERY_ERRORS or low == KEY_REQUIRED:
                raise Fatal(f"the gateway refused the query: {message}")
            raise Retry(f"the gateway answered success:false: {message or '(no message)'}")
        return body.get("data")


def _attempts(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def rejected(cred: Credential, detail: str) -> CredentialsRejected:
    """The one line for a refused credential: which setting, which ref, what the gateway said."""
    if "New-Api-User" in detail:
        hint = (
            "RECONCILE_USER_ID: the gateway says the user id does not belong to the access "
            f"token {cred.ref} ({detail}); use the id shown with the token in new-api's "
            "user settings"
        )
    elif "权限不足" in detail and cred.setting == "RECONCILE_ACCESS_TOKEN":
        hint = (
            f"RECONCILE_ACCESS_TOKEN: the access token {cred.ref} is not an administrator's "
            f"({detail}); use --source self for your own logs"
        )
    else:
        hint = (
            f"{cred.setting}: the gateway rejected {cred.what} {cred.ref} ({detail}); check "
            "that it is right and still exists (it was not retried)"
        )
    return CredentialsRejected(hint, key_ref=cred.ref)


def _json_body(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None


def retry_after(value: str | None) -> float | None:
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
