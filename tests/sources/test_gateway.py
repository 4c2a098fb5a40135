"""The built-in gateway behaves like new-api's GET /api/log/token, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconcile.demo.gateway import ENDPOINT, Faults, GatewayServer, Hostile, LogStore, User
from reconcile.errors import InputError

KEY = "sk-gatewaytest0000000000000000000001"
OTHER = "sk-gatewaytest0000000000000000000002"
T0 = 1_790_000_000  # 2026-09-22, any fixed instant


def make_store(n: int = 250, key: str = KEY, step: int = 10) -> LogStore:
    store = LogStore()
    for i in range(n):
        store.insert(
            key,
            created_at=T0 + i * step,
            type=(2, 2, 2, 5, 6, 1)[i % 6],
            model_name=("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet")[i % 3],
            quota=100 + i,
        )
    return store


def get(server: GatewayServer, **params: Any) -> httpx.Response:
    headers = params.pop("headers", None)
    return httpx.get(server.url + ENDPOINT, params=params, headers=headers, timeout=5)


def page(server: GatewayServer, **params: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "key": KEY,
        "p": 1,
        "page_size": 100,
        "start_timestamp": T0,
        "end_timestamp": T0 + 10**6,
    }
    base.update(params)
    body = get(server, **base).json()
    assert body["success"] is True, body
    data: dict[str, Any] = body["data"]
    return data


@pytest.fixture
def server() -> Any:
    with GatewayServer(make_store()) as srv:
        yield srv


def test_key_in_query_or_bearer_header_gives_the_same_page(server: GatewayServer) -> None:
    by_query = page(server)
    by_header = page(server, key=None, headers={"Authorization": f"Bearer {KEY}"})
    assert by_query == by_header
    assert by_query["total"] == 250
    assert len(by_query["items"]) == 100


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"p": 1, "page_size": 10, "start_timestamp": T0, "end_timestamp": T0 + 5},
            "key is required",
        ),
        ({"key": KEY, "p": 1, "page_size": 10}, "start_timestamp and end_timestamp are required"),
        (
            {"key": KEY, "p": 1, "page_size": 10, "start_timestamp": "x", "end_timestamp": T0},
            "start_timestamp and end_timestamp are required",
        ),
        (
            {"key": KEY, "start_timestamp": T0, "end_timestamp": T0 + 5},
            "p and page_size are required",
        ),
        (
            {"key": "sk-nope", "p": 1, "page_size": 10, "start_timestamp": T0, "end_timestamp": T0},
            "record not found",
        ),
    ],
)
def test_errors_are_success_false_with_http_200(
    server: GatewayServer, params: dict[str, Any], message: str
) -> None:
    resp = get(server, **params)
    assert resp.status_code == 200
    assert resp.json() == {"success": False, "message": message}


def test_newer_servers_reject_an_unknown_token_with_401() -> None:
    with GatewayServer(
        make_store(3), unknown_key_status=401, unknown_key_message="无效的令牌"
    ) as srv:
        resp = get(
            srv,
            p=1,
            page_size=5,
            start_timestamp=T0,
            end_timestamp=T0 + 50,
            headers={"Authorization": "Bearer sk-unknown"},
        )
    assert resp.status_code == 401
    assert resp.json()["message"] == "无效的令牌"


def test_pages_are_newest_first_and_cover_the_range_exactly_once(server: GatewayServer) -> None:
    seen: list[int] = []
    for p in (1, 2, 3):
        seen += [item["id"] for item in page(server, p=p)["items"]]
    assert seen == sorted(seen, reverse=True)
    assert set(seen) == LogStore.ids(server.store, KEY, T0, T0 + 10**6)
    assert len(seen) == 250
    assert page(server, p=4)["items"] == []


def test_time_bounds_are_inclusive_at_both_ends(server: GatewayServer) -> None:
    data = page(server, start_timestamp=T0 + 100, end_timestamp=T0 + 200)
    times = sorted(item["created_at"] for item in data["items"])
    assert times == list(range(T0 + 100, T0 + 201, 10))
    assert data["total"] == 11


def test_page_size_is_capped_at_100_and_defaults_when_invalid(server: GatewayServer) -> None:
    big = page(server, page_size=500)
    assert big["page_size"] == 100
    assert len(big["items"]) == 100
    zero = page(server, page_size=0)
    assert zero["page_size"] == 10
    assert len(zero["items"]) == 10


def test_type_and_model_name_filters(server: GatewayServer) -> None:
    consume = page(server, type=2, page_size=100)
    assert consume["total"] == 126
    assert {i["type"] for i in consume["items"]} == {2}
    assert page(server, type=0)["total"] == 250
    mini = page(server, model_name="4o-mini")
    assert mini["total"] == 83
    assert {i["model_name"] for i in mini["items"]} == {"gpt-4o-mini"}
    assert page(server, model_name="GPT-4O")["total"] == 167  # substring, like SQL LIKE
    assert page(server, model_name="claude%sonnet")["total"] == 83


def test_ids_are_global_across_keys_and_increase_with_time() -> None:
    store = LogStore()
    ids = [store.insert(KEY if i % 2 else OTHER, created_at=T0 + i) for i in range(10)]
    assert ids == list(range(1, 11))
    with GatewayServer(store) as srv:
        mine = page(srv)["items"]
    assert [i["id"] for i in mine] == [10, 8, 6, 4, 2]


def test_query_stays_fast_for_a_large_key() -> None:
    """A page is two bisections and a slice, not a scan: 200,000 logs in one key."""
    store = LogStore()
    for i in range(200_000):
        store.add(KEY, {"id": i + 1, "created_at": T0 + i, "type": 2})
    store.query(KEY, T0, T0 + 10**6, offset=0, limit=100)  # settle once
    started = time.perf_counter()
    for p in range(300):
        total, items = store.query(KEY, T0, T0 + 10**6, offset=p * 100, limit=100)
        assert total == 200_000
        assert len(items) == 100
    per_query = (time.perf_counter() - started) / 300
    assert per_query < 0.002, f"{per_query * 1000:.2f} ms per page"


def test_out_of_order_adds_and_inserts_keep_id_desc_order() -> None:
    store = LogStore()
    for log_id, created in [(5, T0 + 50), (1, T0 + 10), (3, T0 + 30)]:
        store.add(KEY, {"id": log_id, "created_at": created})
    new = store.insert(KEY, created_at=T0 + 20)  # newest id, but not the newest time
    total, items = store.query(KEY, T0, T0 + 100, offset=0, limit=10)
    assert total == 4
    assert [i["id"] for i in items] == [new, 5, 3, 1]


def test_concurrent_requests_while_rows_are_inserted() -> None:
    store = make_store(500)
    errors: list[str] = []
    with GatewayServer(store, Faults(insert_every=3)) as srv:

        def hammer() -> None:
            with httpx.Client(timeout=5) as client:
                for p in range(1, 8):
                    r = client.get(
                        srv.url + ENDPOINT,
                        params={
                            "key": KEY,
                            "p": p,
                            "page_size": 100,
                            "start_timestamp": T0,
                            "end_timestamp": T0 + 10**6,
                        },
                    )
                    body = r.json()
                    if not body["success"] or len(body["data"]["items"]) > 100:
                        errors.append(str(body)[:200])

        threads = [threading.Thread(target=hammer) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        inserted = list(srv.inserted)
    assert not errors
    assert len(inserted) == 42 // 3
    assert store.count(KEY) == 500 + len(inserted)
    assert all(
        T0 <= r["created_at"] <= T0 + 10**6
        for r in store.query(KEY, T0, T0 + 10**6, offset=0, limit=10**6)[1]
    )


def test_fault_429_carries_retry_after() -> None:
    with GatewayServer(make_store(5), Faults(status_429_every=2, retry_after=0.25)) as srv:
        first = get(srv, key=KEY, p=1, page_size=5, start_timestamp=T0, end_timestamp=T0 + 99)
        second = get(srv, key=KEY, p=1, page_size=5, start_timestamp=T0, end_timestamp=T0 + 99)
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "0.25"
    assert srv.stats["429"] == 1
    assert srv.requests == 2


def test_fault_5xx_fail_and_truncate() -> None:
    faults = Faults(status_500_every=5, error_status=503, fail_every=3, truncate_every=2)
    with GatewayServer(make_store(5), faults) as srv:
        outcomes = []
        for _ in range(5):
            try:
                r = get(srv, key=KEY, p=1, page_size=5, start_timestamp=T0, end_timestamp=T0 + 99)
            except httpx.RemoteProtocolError:
                outcomes.append("short read")
                continue
            try:
                outcomes.append(f"{r.status_code} {r.json()['message']!r}")
            except json.JSONDecodeError:
                outcomes.append(f"{r.status_code} bad json")
    assert outcomes == [
        "200 ''",
        "short read",
        "200 '查询日志失败'",
        "200 bad json",
        "503 bad json",
    ]


def test_fault_timeout_hangs_past_the_client_timeout() -> None:
    with GatewayServer(make_store(5), Faults(timeout_every=1, hang_seconds=3)) as srv:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(srv.url + ENDPOINT, params={"key": KEY}, timeout=0.2)
    assert time.monotonic() - started < 2  # stopping the server wakes the hanging handler


def test_fault_insert_and_delete_change_the_queried_range() -> None:
    store = make_store(50)
    with GatewayServer(store, Faults(insert_every=1, delete_every=2)) as srv:
        for _ in range(4):
            page(srv, start_timestamp=T0 + 100, end_timestamp=T0 + 200)
        inserted, deleted = list(srv.inserted), list(srv.deleted)
    assert len(inserted) == 4
    assert len(deleted) == 2
    assert store.count(KEY) == 50 + 4 - 2
    kept = store.ids(KEY, T0 + 100, T0 + 200)
    assert set(inserted) - set(deleted) <= kept
    assert not set(deleted) & kept


def test_legacy_and_rewritten_id_modes() -> None:
    store = make_store(3)
    with GatewayServer(store, legacy_list=True) as srv:
        body = get(srv, key=KEY, p=1, page_size=1, start_timestamp=T0, end_timestamp=T0).json()
    assert isinstance(body["data"], list)
    assert len(body["data"]) == 3
    with GatewayServer(store, id_style="row_number") as srv:
        assert [i["id"] for i in page(srv, p=2, page_size=1)["items"]] == [2]


def test_other_paths_are_404(server: GatewayServer) -> None:
    resp = httpx.get(server.url + "/api/log/self", timeout=5)
    assert resp.status_code == 404


def test_from_jsonl_reads_keys_and_reports_bad_lines(tmp_path: Path) -> None:
    good = tmp_path / "logs.jsonl"
    good.write_text(
        json.dumps({"key": KEY, "id": 7, "created_at": T0, "type": 2})
        + "\n\n"
        + json.dumps({"key": OTHER, "id": 9, "created_at": T0 + 1, "type": 1})
        + "\n",
        encoding="utf-8",
    )
    store = LogStore.from_jsonl(good)
    assert store.keys() == [KEY, OTHER]
    assert len(store) == 2
    assert store.insert(KEY) == 10  # ids continue after the largest loaded
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"key": KEY, "id": 1, "created_at": T0}) + "\n{oops\n")
    with pytest.raises(InputError) as err:
        LogStore.from_jsonl(bad)
    assert err.value.line == 2
    assert "bad.jsonl" in str(err.value)


def test_module_runs_as_a_server(tmp_path: Path) -> None:
    data = tmp_path / "logs.jsonl"
    data.write_text(json.dumps({"key": KEY, "id": 1, "created_at": T0, "type": 2}) + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconcile.demo.gateway", "--data", str(data), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        body = httpx.get(
            url + ENDPOINT,
            params={"p": 1, "page_size": 10, "start_timestamp": T0, "end_timestamp": T0},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=5,
        ).json()
        assert body["data"]["total"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


# -- the user-level API, the 2026 unpaged list, hostile modes ----------------------------------


def user_get(
    server: GatewayServer, path: str, token: str = "", user: str = "", **params: Any
) -> httpx.Response:
    headers = {k: v for k, v in (("Authorization", token), ("New-Api-User", user)) if v}
    query = {"p": 1, "page_size": 100, "start_timestamp": T0, "end_timestamp": T0 + 10**6}
    return httpx.get(server.url + path, params={**query, **params}, headers=headers, timeout=5)


def test_the_user_api_checks_token_and_user_id_as_new_api_does() -> None:
    users = {"tok-a": User(7, [KEY]), "tok-root": User(1, [], admin=True)}
    with GatewayServer(make_store(), users=users) as srv:
        answers = [
            user_get(srv, "/api/log/self"),
            user_get(srv, "/api/log/self", "tok-wrong", "7"),
            user_get(srv, "/api/log/self", "tok-a"),
            user_get(srv, "/api/log/self", "tok-a", "8"),
            user_get(srv, "/api/log/", "tok-a", "7"),
        ]
        ok = user_get(srv, "/api/log/self", "Bearer tok-a", "7").json()
        admin = user_get(srv, "/api/log/", "tok-root", "1").json()
        stat = user_get(srv, "/api/log/self/stat", "tok-a", "7", type=2).json()
    seen = [(r.status_code, r.json()["message"].split("，")[-1]) for r in answers]
    assert seen == [
        (401, "未登录且未提供 access token"),
        (200, "access token 无效"),
        (401, "未提供 New-Api-User"),
        (401, "New-Api-User 与登录用户不匹配"),
        (403, "权限不足"),
    ]
    items = ok["data"]["items"]
    assert [i["id"] for i in items] == list(range(1, 101))  # positions, as 2026 servers show
    assert "channel" not in items[0]
    assert admin["data"]["items"][0]["id"] == 250  # real ids for an admin
    consume = sum(100 + i for i in range(250) if i % 6 < 3)
    assert stat["data"]["quota"] == consume


def test_the_2026_unpaged_list_holds_the_newest_n_numbered_by_position() -> None:
    with GatewayServer(make_store(), legacy_list=True, recent_limit=20) as srv:
        body = get(srv, key=KEY, p=1, page_size=5, start_timestamp=T0, end_timestamp=T0 + 9)
    items = body.json()["data"]
    assert [i["id"] for i in items] == list(range(1, 21))
    assert items[0]["created_at"] == T0 + 249 * 10  # newest first, time filters ignored


def test_hostile_answers_are_compressed_and_lie_as_asked() -> None:
    hostile = Hostile(gzip=True, lie_total=True, milliseconds=True)
    with GatewayServer(make_store(), hostile=hostile) as srv:
        resp = get(srv, key=KEY, p=1, page_size=100, start_timestamp=T0, end_timestamp=T0 + 10**6)
    assert resp.headers["Content-Encoding"] == "gzip"
    data = resp.json()["data"]  # httpx decodes it once
    assert data["total"] == 150  # 250 logs, one page short
    assert data["items"][0]["created_at"] == (T0 + 249 * 10) * 1000
