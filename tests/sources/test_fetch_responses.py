"""How single gateway answers are classified (httpx.MockTransport: answers the built-in
gateway never gives, such as redirects, foreign JSON or an HTTP-date Retry-After)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reconcile.core.redact import Redactor
from reconcile.errors import GatewayError
from reconcile.settings import ApiKey, Settings
from reconcile.sources import engine
from reconcile.sources import http as fetch
from reconcile.sources.progress import FetchProgress
from reconcile.sources.token import key_scope

KEY = ApiKey.of("sk-responsetest0123456789abcdefghijklmnopqrstuv")
ENDPOINT = "http://gateway.test/api/log/token"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "BACKOFF_BASE", 0.0)


PARAMS: dict[str, str | int] = {
    "p": 1,
    "page_size": 100,
    "start_timestamp": 100,
    "end_timestamp": 200,
    "type": 0,
}


def answer(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> engine.Page:
    """One page through the real client code, with `handler` as the gateway."""
    settings = Settings(max_retries=kw.pop("max_retries", 0), **kw)

    async def go() -> engine.Page:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            tally = fetch.Tally(None, 1)
            client = fetch.Client(http, settings, Redactor([KEY]), tally)
            data = await client.get(
                httpx.URL(ENDPOINT), PARAMS, key_scope(KEY).cred, "key k, window w"
            )
            return engine.parse_page(data, 1, 100)

    return asyncio.run(go())


def ok(data: object) -> httpx.Response:
    return httpx.Response(200, json={"success": True, "message": "", "data": data})


def test_a_good_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == f"Bearer {KEY.secret.get_secret_value()}"
        assert "key" not in request.url.params  # not in the URL unless the gateway needs it
        assert request.url.params["page_size"] == "100"
        assert request.url.params["start_timestamp"] == "100"
        assert request.url.params["end_timestamp"] == "200"
        return ok({"page": 1, "page_size": 50, "total": 1, "items": [{"id": 3}]})

    page = answer(handler)
    assert (page.total, page.page_size, page.items) == (1, 50, [{"id": 3}])


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (httpx.Response(301, headers={"Location": "https://x"}), "redirects"),
        (httpx.Response(404, text="404 page not found"), "HTTP 404.*RECONCILE_BASE_URL"),
        (httpx.Response(400, json={"message": "bad"}), "HTTP 400 from the gateway: bad"),
        (httpx.Response(200, json=[1, 2]), r"not new-api's \{success, message, data\}"),
        (ok({"items": []}), "lacks an integer data.total"),
        (ok({"page": 2, "total": 0, "items": []}), "asked for page 1"),
        (ok({"total": 1, "items": ["x"]}), "other than logs"),
        (
            httpx.Response(200, json={"success": False, "message": "p and page_size are required"}),
            "refused the query",
        ),
        (
            httpx.Response(403, json={"success": False, "message": "IP not allowed"}),
            "rejected API key .*IP not allowed",
        ),
    ],
)
def test_answers_that_are_not_retried(response: httpx.Response, match: str) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return response

    with pytest.raises(GatewayError, match=match):
        answer(handler, max_retries=3)
    assert len(calls) == 1


def test_a_503_with_an_http_date_retry_after_is_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time
    from email.utils import formatdate

    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(fetch.asyncio, "sleep", fake_sleep)
    replies = iter(
        [
            httpx.Response(503, headers={"Retry-After": formatdate(time.time() + 30, usegmt=True)}),
            ok({"page": 1, "total": 0, "items": []}),
        ]
    )
    page = answer(lambda request: next(replies), max_retries=2, retry_budget=60)
    assert page.total == 0
    assert len(slept) == 1
    assert 25 < slept[0] <= 31


def test_a_body_that_is_not_json_is_retried_then_reported() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, content=b'{"success": true, "data": {"tot')

    with pytest.raises(GatewayError, match="truncated or not JSON; gave up after 3 attempts"):
        answer(handler, max_retries=2)
    assert len(calls) == 3


def test_progress_counts_pages_and_retries_as_they_happen() -> None:
    seen: list[FetchProgress] = []
    replies = iter([httpx.Response(502), ok({"page": 1, "total": 2, "items": [{}, {}]})])

    async def go() -> None:
        transport = httpx.MockTransport(lambda request: next(replies))
        async with httpx.AsyncClient(transport=transport) as http:
            tally = fetch.Tally(seen.append, 1)
            settings = Settings(max_retries=1)
            client = fetch.Client(http, settings, Redactor([KEY]), tally)
            await client.get(httpx.URL(ENDPOINT), PARAMS, key_scope(KEY).cred, "w")

    asyncio.run(go())
    # logs are counted when their window is proved complete, not page by page
    assert seen[-1] == FetchProgress(pages=1, logs=0, retries=1, keys_total=1)


def test_an_https_gateway_certificate_is_verified_against_the_ca_bundle() -> None:
    https = fetch.ConnectionShards(2, https=True).tls
    assert https.verify_mode is ssl.CERT_REQUIRED
    assert https.check_hostname
    assert https.cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded
    # a plain-http gateway's pools hold a context that trusts nothing, should TLS ever happen
    plain = fetch.ConnectionShards(2, https=False).tls
    assert plain.verify_mode is ssl.CERT_REQUIRED
    assert plain.check_hostname
    assert plain.cert_store_stats()["x509_ca"] == 0
