"""`token`: the seed's paged `GET /api/log/token`, one read per API key.

The key travels in `Authorization: Bearer` (and, only for gateways that read nothing else,
in `?key=`). When the endpoint answers with a plain list instead of pages (upstream new-api
2025/2026), the list is read by `token_unpaged`; when that list cannot cover the period and
an access token is configured, the user's `/api/log/self` is read instead.
"""

from __future__ import annotations

from reconcile.core.period import Period
from reconcile.core.redact import Redactor
from reconcile.core.results import FetchResult
from reconcile.errors import InputError
from reconcile.settings import ApiKey, Settings
from reconcile.sources.engine import Api, Scope, Unpaged
from reconcile.sources.http import Credential
from reconcile.sources.paged import fetch_paged
from reconcile.sources.progress import ProgressHook

ENDPOINT = "/api/log/token"
API = Api("token", ENDPOINT, trust_small_ids=True)


def key_scope(key: ApiKey) -> Scope:
    secret = key.secret.get_secret_value()
    cred = Credential(
        ref=key.ref,
        setting="RECONCILE_API_KEYS",
        headers={"Authorization": f"Bearer {secret}"},
        query_key=secret,
        what="API key",
    )
    return Scope(ref=key.ref, cred=cred, label=f"key {key.ref}")


class TokenSource:
    """Each configured key's logs from /api/log/token, kept apart by key."""

    name = "token"

    def __init__(self, settings: Settings, keys: list[ApiKey] | None = None) -> None:
        self.settings = settings
        self.keys = settings.keys() if keys is None else keys

    def fetch(self, period: Period, progress: ProgressHook | None = None) -> FetchResult:
        if not self.keys:
            raise InputError(
                "no API key configured: set RECONCILE_API_KEYS", field="RECONCILE_API_KEYS"
            )
        redact = Redactor([*self.keys, *self.settings.secrets()])
        scopes = [key_scope(k) for k in self.keys]
        try:
            return fetch_paged(self.settings, period, API, scopes, redact, progress)
        except Unpaged:
            from reconcile.sources import token_unpaged

            try:
                return token_unpaged.fetch_unpaged(self.settings, period, scopes, redact, progress)
            except token_unpaged.CappedLogList:
                if self.settings.source is None and self._has_access_token():
                    from reconcile.sources.self import SelfSource

                    return SelfSource(self.settings).fetch(period, progress)
                raise

    def _has_access_token(self) -> bool:
        return self.settings.access() is not None and self.settings.user_id is not None


def fetch_logs(
    settings: Settings,
    period: Period,
    keys: list[ApiKey],
    progress: ProgressHook | None = None,
) -> FetchResult:
    """All logs of `period` for each key (the token source), each row tagged with its key ref.

    Raises InputError for missing/invalid configuration, GatewayError when the gateway cannot
    be read completely (after bounded retries) or rejects a key.
    """
    return TokenSource(settings, keys).fetch(period, progress)
