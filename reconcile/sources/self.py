"""`self`: `GET /api/log/self`, a user's own logs with the user's access token.

The way to read a whole month from an upstream new-api as a non-admin: paged, filtered by
time (and by `token_name` when RECONCILE_TOKEN_NAMES is set: one read per name). Its ids are
row positions (2026) or id % 1024 (2025), so logs are identified by content (see
`content`). `/api/log/self/stat` gives the gateway's own consume sum, compared with the rows.
"""

from __future__ import annotations

from reconcile.core.period import Period
from reconcile.core.results import FetchResult
from reconcile.settings import Settings
from reconcile.sources.engine import Api
from reconcile.sources.progress import ProgressHook
from reconcile.sources.user import fetch_user_api

API = Api("self", "/api/log/self", "/api/log/self/stat", trust_small_ids=False)


class SelfSource:
    name = "self"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def fetch(self, period: Period, progress: ProgressHook | None = None) -> FetchResult:
        return fetch_user_api(self.settings, period, API, progress)
