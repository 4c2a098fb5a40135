"""A real HTTP server for new-api's log endpoints, with injectable faults and hostile modes.

`/api/log/token` (paged as the seed documents, or the unpaged lists of upstream versions),
and, for the users given, `/api/log/self`, `/api/log/` and their `/stat` sums (users.py).

Used by the demo, the CLI tests and the fetch tests: the fetcher is exercised over real sockets,
real keep-alive connections and real timeouts, not a mock.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from reconcile.demo.faults import Faults
from reconcile.demo.faults import hits as _hits
from reconcile.demo.hostile import Hostile
from reconcile.demo.store import LogStore
from reconcile.demo.users import USER_PATHS, User, handle_user_api

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10  # new-api's ItemsPerPage when page_size is 0 or invalid
ENDPOINT = "/api/log/token"

_INT = re.compile(r"[+-]?[0-9]{1,18}")

IdStyle = Literal["real", "row_number", "mod1024"]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True
    gateway: GatewayServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a client pool expects
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms ACK stalls
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.gateway._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.gateway._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request line carries the key when it is sent as a query parameter."""

    def do_GET(self) -> None:
        try:
            self.server.gateway._handle(self)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):  # client gave up
            self.close_connection = True

    # -- responses -------------------------------------------------------------------------

    def send_body(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json; charset=utf-8",
        headers: dict[str, str] | None = None,
        declared_length: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header(
            "Content-Length", str(len(body) if declared_length is None else declared_length)
        )
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, obj: object, status: int = 200, **kw: Any) -> None:
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        hostile = self.server.gateway.hostile
        body, extra = hostile.encode(body)
        kw["headers"] = {**kw.get("headers", {}), **extra}
        if hostile.drip_seconds > 0:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in kw["headers"].items():
                self.send_header(name, value)
            self.end_headers()
            hostile.write(self.wfile, body)
            return
        self.send_body(status, body, **kw)


class GatewayServer:
    """`with GatewayServer(store, faults=Faults()) as server: fetch from server.url`.

    Options mimic other gateway generations: `accept_bearer=False` is an older server that
    only reads `?key=`; `unknown_key_status=401, unknown_key_message="无效的令牌"` is a newer
    one whose auth middleware rejects the token; `legacy_list=True` answers with the
    un-paged list of old versions (with `recent_limit`, only the newest that many, numbered
    by position, as 2026 versions do); `id_style` rewrites ids as some versions do for users.
    `users` (access token -> User) serves /api/log/self, /api/log/ and their stat sums;
    `hostile` switches on a misbehaviour (hostile.py).
    """

    def __init__(
        self,
        store: LogStore,
        faults: Faults | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        accept_bearer: bool = True,
        accept_query_key: bool = True,
        unknown_key_status: int = 200,
        unknown_key_message: str = "record not found",
        legacy_list: bool = False,
        id_style: IdStyle = "real",
        recent_limit: int = 0,
        users: dict[str, User] | None = None,
        hostile: Hostile | None = None,
        pricing: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.pricing = pricing  # GET /api/pricing; None: the demo rules'
        self.faults = faults or Faults()
        self.host, self.port = host, port
        self.accept_bearer = accept_bearer
        self.accept_query_key = accept_query_key
        self.unknown_key_status = unknown_key_status
        self.unknown_key_message = unknown_key_message
        self.legacy_list = legacy_list
        self.id_style: IdStyle = id_style
        self.recent_limit = recent_limit
        self.users = dict(users or {})
        self.hostile = hostile or Hostile()
        #: What was served: "ok", "429", "5xx", "timeout", "truncate", "fail", "insert",
        #: "delete", "error" (a success:false answer to a bad query), "not_found".
        self.stats: Counter[str] = Counter()
        self.by_key: Counter[str] = Counter()  # requests per key presented (known or not)
        self.inserted: list[int] = []  # ids added by insert_every
        self.deleted: list[int] = []  # ids removed by delete_every
        self._requests = 0
        self._truncations = 0
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self.connections_opened = 0  # TCP connections accepted, over the server's life
        self.peak_connections = 0  # most connections open at the same time
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> GatewayServer:
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.gateway = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # idle keep-alive connections would otherwise linger
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> int:
        """Requests to the endpoint served so far (every attempt counts, faulty or not)."""
        with self._lock:
            return self._requests

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
                self.connections_opened += 1
                self.peak_connections = max(self.peak_connections, len(self._conns))
            else:
                self._conns.discard(conn)

    # -- the endpoint ----------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        url = urlsplit(handler.path)
        if url.path.rstrip("/") == "/api/pricing":  # the published price list (pricing_api)
            from reconcile.demo.pricing_api import demo_payload

            handler.send_json(self.pricing if self.pricing is not None else demo_payload())
            return
        if url.path in USER_PATHS and self.users:
            request_no = self._count_request()
            if self.faults.latency > 0:
                time.sleep(self.faults.latency)
            if not self._fault(handler, request_no):
                handle_user_api(self, handler, url.path, url.query, request_no)
            return
        if url.path.rstrip("/") != ENDPOINT:
            with self._lock:
                self.stats["not_found"] += 1
            handler.send_body(404, b"404 page not found", content_type="text/plain")
            return
        request_no = self._count_request()
        faults = self.faults
        if faults.latency > 0:
            time.sleep(faults.latency)
        if self._fault(handler, request_no):
            return
        params = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        key = params.get("key", "") if self.accept_query_key else ""
        if not key and self.accept_bearer:
            auth = handler.headers.get("Authorization", "")
            if auth[:7] in ("Bearer ", "bearer "):
                auth = auth[7:]
            key = auth.strip()
        if not key:
            self._error(handler, "key is required")
            return
        with self._lock:
            self.by_key[key] += 1
        start, end = _int64(params.get("start_timestamp")), _int64(params.get("end_timestamp"))
        if start == 0 or end == 0:
            self._error(handler, "start_timestamp and end_timestamp are required")
            return
        if not params.get("p") or not params.get("page_size"):
            self._error(handler, "p and page_size are required")
            return
        if not self.store.has_key(key):
            self._error(handler, self.unknown_key_message, status=self.unknown_key_status)
            return
        page = max(_int64(params.get("p")), 1)
        size = _int64(params.get("page_size"))
        size = self.hostile.size(DEFAULT_PAGE_SIZE if size < 1 else min(size, MAX_PAGE_SIZE))
        start, end = self.hostile.bounds(start, end)
        log_type, model = _int64(params.get("type")), params.get("model_name", "")

        self.change_rows(request_no, key, start, end)
        offset = self.hostile.offset(page, size)
        if self.legacy_list:
            limit = self.recent_limit or 2**62
            _, items = self.store.query(key, 1, 2**62, offset=0, limit=limit)
            with self._lock:
                self.stats["ok"] += 1
            items = [self.hostile.item(dict(i), key) for i in self._ids(items, 0)]
            handler.send_json({"success": True, "message": "", "data": items})
            return
        total, items = self.store.query(
            key, start, end, offset=offset, limit=size, log_type=log_type, model_name=model
        )
        with self._lock:
            self.stats["ok"] += 1
        data = {"page": page, "page_size": size, "total": total, "items": self._ids(items, offset)}
        handler.send_json({"success": True, "message": "", "data": self.hostile.shape(data, key)})

    def change_rows(self, n: int, key: str, start: int, end: int) -> None:
        """The insert/delete faults of request `n`, in `key`'s rows of [start, end]."""
        if _hits(self.faults.insert_every, n):
            self._insert_into(key, start, end)
        if _hits(self.faults.delete_every, n):
            self._delete_from(key, start, end)

    def _count_request(self) -> int:
        with self._lock:
            self._requests += 1
            return self._requests

    def _ids(
        self, items: list[dict[str, Any]], offset: int, style: str | None = None
    ) -> list[dict[str, Any]]:
        style = style or self.id_style
        if self.recent_limit and self.legacy_list:
            style = "row_number"  # 2026: the newest MaxRecentItems, numbered by position
        if style == "real":
            return items
        out = []
        for i, item in enumerate(items):
            row = dict(item)
            row["id"] = offset + i + 1 if style == "row_number" else int(row["id"]) % 1024
            out.append(row)
        return out

    def _error(self, handler: _Handler, message: str, status: int = 200) -> None:
        with self._lock:
            self.stats["error"] += 1
        handler.send_json({"success": False, "message": message}, status=status)

    def _fault(self, handler: _Handler, request_no: int) -> bool:
        faults = self.faults
        if _hits(faults.status_429_every, request_no):
            self._count("429")
            ra = faults.retry_after
            value = str(int(ra)) if float(ra).is_integer() else f"{ra:g}"
            handler.send_body(
                429, b"Too Many Requests", content_type="text/plain", headers={"Retry-After": value}
            )
            return True
        if _hits(faults.status_500_every, request_no):
            self._count("5xx")
            handler.send_body(
                faults.error_status, b"Internal Server Error", content_type="text/plain"
            )
            return True
        if _hits(faults.timeout_every, request_no):
            self._count("timeout")
            self._stopping.wait(faults.hang_seconds)
            handler.close_connection = True
            handler.send_json({"success": False, "message": "too late"})
            return True
        if _hits(faults.truncate_every, request_no):
            self._count("truncate")
            with self._lock:
                self._truncations += 1
                short_read = self._truncations % 2 == 1
            body = json.dumps(
                {"success": True, "message": "", "data": {"page": 1, "total": 1, "items": []}}
            ).encode()
            cut = body[: len(body) // 2]
            handler.close_connection = True
            # A short read (connection closed before Content-Length bytes), or a complete
            # response whose JSON is cut: a proxy that dropped the rest.
            handler.send_body(200, cut, declared_length=len(body) if short_read else None)
            return True
        if _hits(faults.fail_every, request_no):
            self._count("fail")
            handler.send_json({"success": False, "message": faults.fail_message})
            return True
        return False

    def _count(self, what: str) -> None:
        with self._lock:
            self.stats[what] += 1

    def _insert_into(self, key: str, start: int, end: int) -> None:
        with self._lock:
            created = self._rng.randint(start, end)
            quota = self._rng.randint(1, 5000)
        log_id = self.store.insert(
            key,
            created_at=created,
            type=2,
            model_name="gpt-4o-mini",
            quota=quota,
            prompt_tokens=quota,
            completion_tokens=0,
            other=json.dumps({"model_ratio": 1, "group_ratio": 1, "completion_ratio": 1}),
        )
        with self._lock:
            self.inserted.append(log_id)
            self.stats["insert"] += 1

    def _delete_from(self, key: str, start: int, end: int) -> None:
        ids = sorted(self.store.ids(key, start, end))
        if not ids:
            return
        with self._lock:
            victim = self._rng.choice(ids)
        if self.store.remove(key, victim):
            with self._lock:
                self.deleted.append(victim)
                self.stats["delete"] += 1


def _int64(text: str | None) -> int:
    """Go's strconv.ParseInt with the error ignored: anything unparsable is 0."""
    return int(text) if text and _INT.fullmatch(text) else 0
