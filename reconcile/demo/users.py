"""The built-in gateway's user-level log API: `/api/log/self`, `/api/log/` and their stats.

As new-api answers them (controller/log.go, middleware/auth.go): an access token in
`Authorization` (raw or `Bearer`) plus `New-Api-User: <id>` matching its owner; a bad token
is HTTP 200 `success:false`, a missing or mismatched user id 401, a non-admin on `/api/log/`
权限不足. `/api/log/self` numbers rows by position (2026) or id % 1024 (2025) per the user's
`id_style`; `/api/log/` shows real ids. The stat endpoints sum `quota` for the filter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from reconcile.demo.server import GatewayServer, _Handler

SELF, ADMIN = "/api/log/self", "/api/log/"
SELF_STAT, ADMIN_STAT = "/api/log/self/stat", "/api/log/stat"
USER_PATHS = frozenset({SELF, ADMIN, SELF_STAT, ADMIN_STAT})


@dataclass(frozen=True)
class User:
    """A gateway user: their id, the API keys (tokens) they own, and their role."""

    id: int
    keys: list[str] = field(default_factory=list)
    admin: bool = False
    id_style: Literal["real", "row_number", "mod1024"] = "row_number"
    #: A gateway whose stat endpoint sums wrongly (new-api #7105 showed 0 over real rows).
    stat_offset: int = 0


def _deny(handler: _Handler, message: str, status: int = 200) -> None:
    handler.send_json({"success": False, "message": message}, status=status)


def handle_user_api(
    server: GatewayServer, handler: _Handler, path: str, query: str, request_no: int
) -> None:
    params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    token = handler.headers.get("Authorization", "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        _deny(handler, "无权进行此操作，未登录且未提供 access token", 401)
        return
    user = server.users.get(token)
    if user is None:
        _deny(handler, "无权进行此操作，access token 无效")
        return
    header = handler.headers.get("New-Api-User", "")
    if not header:
        _deny(handler, "无权进行此操作，未提供 New-Api-User", 401)
        return
    if not header.strip().isdigit():
        _deny(handler, "无权进行此操作，New-Api-User 格式错误", 401)
        return
    if int(header) != user.id:
        _deny(handler, "无权进行此操作，New-Api-User 与登录用户不匹配", 401)
        return
    admin = path in (ADMIN, ADMIN_STAT)
    if admin and not user.admin:
        _deny(handler, "无权进行此操作，权限不足", 403)
        return
    keys = server.store.keys() if admin else user.keys
    hostile = server.hostile
    start, end = hostile.bounds(
        _int(params.get("start_timestamp")), _int(params.get("end_timestamp"))
    )
    if keys and path in (SELF, ADMIN):
        server.change_rows(request_no, keys[0], start, end or 2**62)
    rows = server.store.between(keys, start, end or 2**62)
    rows = [r for r in rows if _matches(r, params)]
    if path in (SELF_STAT, ADMIN_STAT):
        quota = sum(int(r.get("quota", 0)) for r in rows) + user.stat_offset
        handler.send_json(
            {"success": True, "message": "", "data": {"quota": quota, "rpm": 0, "tpm": 0}}
        )
        return
    page = max(_int(params.get("p")), 1)
    size = _int(params.get("page_size"))
    size = hostile.size(10 if size < 1 else min(size, 100))
    offset = hostile.offset(page, size)
    items = server._ids(rows[offset : offset + size], offset, "real" if admin else user.id_style)
    if not admin:
        items = [{k: v for k, v in i.items() if k not in ("channel", "username")} for i in items]
    data = {"page": page, "page_size": size, "total": len(rows), "items": items}
    handler.send_json({"success": True, "message": "", "data": hostile.shape(data, token)})


def _matches(row: dict[str, Any], params: dict[str, str]) -> bool:
    log_type = _int(params.get("type"))
    if log_type and row.get("type") != log_type:
        return False
    name = params.get("token_name", "")
    if name and row.get("token_name") != name:
        return False
    who = params.get("username", "")
    return not who or row.get("username") == who


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0
