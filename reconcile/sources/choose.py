"""Which source reads the period: `--source` when given, else the credentials configured.

- RECONCILE_LOG_DSN (or `--source database`): the gateway's own log database.
- RECONCILE_API_KEYS: `token`; the gateway's first answer tells paged from unpaged, and an
  unpaged list that cannot cover the period hands over to `self` when an access token is set.
- RECONCILE_ACCESS_TOKEN + RECONCILE_USER_ID alone: `self` (`admin` only when asked for:
  it reads every user's logs).
"""

from __future__ import annotations

from reconcile.errors import InputError
from reconcile.settings import Settings
from reconcile.sources.base import LogSource


def choose_source(settings: Settings) -> LogSource:
    forced = settings.source
    if forced == "database" or (forced is None and settings.log_dsn is not None):
        from reconcile.sources.database import DatabaseSource

        source: LogSource = DatabaseSource(settings)
        return source
    if forced == "self" or (forced is None and not settings.keys() and settings.access()):
        from reconcile.sources.self import SelfSource

        return SelfSource(settings)
    if forced == "admin":
        from reconcile.sources.admin import AdminSource

        return AdminSource(settings)
    if not settings.keys() and forced is None:
        raise InputError(
            "no credentials: set RECONCILE_API_KEYS (API keys), or RECONCILE_ACCESS_TOKEN and "
            "RECONCILE_USER_ID (a user's access token), or RECONCILE_LOG_DSN",
            field="RECONCILE_API_KEYS",
        )
    from reconcile.sources.token import TokenSource

    return TokenSource(settings)
