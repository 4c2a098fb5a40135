"""What `self` and `admin` share: a user's access token, sent as new-api expects it.

new-api's dashboard API (middleware/auth.go) takes an access token in `Authorization` (the
raw token; newer servers also accept `Bearer`) together with `New-Api-User: <user id>`,
which must be the token owner's id: otherwise 401 "New-Api-User 与登录用户不匹配". A bad
token is HTTP 200 `success:false` "无权进行此操作，access token 无效" on 2025 servers, 401 on
2026 ones; both are refused at once naming the setting.
"""

from __future__ import annotations

from reconcile.core.period import Period
from reconcile.core.redact import Redactor
from reconcile.core.results import FetchResult
from reconcile.errors import IncompatibleGateway, InputError
from reconcile.settings import Settings
from reconcile.sources.engine import Api, Scope, Unpaged
from reconcile.sources.http import Credential
from reconcile.sources.paged import fetch_paged
from reconcile.sources.progress import ProgressHook

HOW_TO_GET_ONE = (
    "in new-api open the user settings (个人设置), generate an access token "
    "(生成系统访问令牌); the user id is shown there"
)


def user_scopes(settings: Settings, admin: bool = False) -> list[Scope]:
    """One scope per RECONCILE_TOKEN_NAMES entry (a server-side filter), or one for all;
    for an admin, also one per RECONCILE_USERNAMES entry."""
    token = settings.access()
    if token is None:
        raise InputError(
            f"no access token: set RECONCILE_ACCESS_TOKEN ({HOW_TO_GET_ONE})",
            field="RECONCILE_ACCESS_TOKEN",
        )
    if settings.user_id is None:
        raise InputError(
            f"no user id: set RECONCILE_USER_ID to the access token's user ({HOW_TO_GET_ONE})",
            field="RECONCILE_USER_ID",
        )
    cred = Credential(
        ref=token.ref,
        setting="RECONCILE_ACCESS_TOKEN",
        headers={
            "Authorization": token.secret.get_secret_value(),
            "New-Api-User": str(settings.user_id),
        },
        what="access token",
    )
    user = f"user-{settings.user_id}"
    names = [("token_name", n) for n in settings.token_name_list()] or [("", "")]
    users = [("username", u) for u in settings.username_list()] if admin else []
    scopes = []
    for who in users or [("", "")]:
        for name in names:
            params = dict(p for p in (who, name) if p[0])
            if not params:
                return [Scope(ref=user, cred=cred, label=f"user {settings.user_id}")]
            shown = ", ".join(f"{k} {v!r}" for k, v in params.items())
            scopes.append(
                Scope(
                    ref=f"{user}:" + "/".join(params.values()),
                    cred=cred,
                    label=f"user {settings.user_id}, {shown}",
                    params=params,
                )
            )
    return scopes


def fetch_user_api(
    settings: Settings, period: Period, api: Api, progress: ProgressHook | None
) -> FetchResult:
    scopes = user_scopes(settings, admin=api.source == "admin")
    redact = Redactor(settings.secrets())
    try:
        return fetch_paged(settings, period, api, scopes, redact, progress)
    except Unpaged:
        raise IncompatibleGateway(
            f"{api.path} answered a plain list instead of pages: not new-api's log API",
            source=api.source,
        ) from None
