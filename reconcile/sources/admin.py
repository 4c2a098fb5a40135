"""`admin`: `GET /api/log/`, every user's logs with an administrator's access token.

The real row ids and channels (new-api formats logs for non-admins only), optionally one
read per RECONCILE_TOKEN_NAMES entry. `/api/log/stat` gives the gateway's own consume sum.
A non-admin token is refused by new-api with 权限不足: the message says to use `self`.
"""

from __future__ import annotations

from reconcile.core.period import Period
from reconcile.core.results import FetchResult
from reconcile.settings import Settings
from reconcile.sources.engine import Api
from reconcile.sources.progress import ProgressHook
from reconcile.sources.user import fetch_user_api

API = Api("admin", "/api/log/", "/api/log/stat", trust_small_ids=True)


class AdminSource:
    name = "admin"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def fetch(self, period: Period, progress: ProgressHook | None = None) -> FetchResult:
        return fetch_user_api(self.settings, period, API, progress)
