"""One fetch from a paged log API: all scopes, one HTTP client, one concurrency limit.

Each scope's first answer picks how it is read (engine.detect_scheme): `StableRead` when ids
are real, `ContentRead` otherwise; a stable-looking scope whose ids later collide is read
again by content. Where the API has a stat endpoint, the gateway's own consume sum for the
period is fetched too and compared with the rows' sum (new-api #7105: a dashboard once
showed 0 over real rows); a difference is a warning, never a silent pass.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from reconcile.core.period import Period
from reconcile.core.redact import Redactor
from reconcile.core.results import FetchResult, WindowRecord
from reconcile.core.schema import CONSUME
from reconcile.errors import GatewayError, InputError, ReconcileError
from reconcile.settings import Settings
from reconcile.sources import engine as eng
from reconcile.sources.http import Client, Tally, new_http
from reconcile.sources.items import BY_TIME, Seen, columns, content_key, logs_frame, to_int
from reconcile.sources.progress import ProgressHook

log = logging.getLogger("reconcile.sources.engine")

BATCH = 5000  # logs normalised into columns at a time


class IdsUnstable(Exception):
    """Ids that looked stable turned out not to be (a collision, or row positions)."""

    def __init__(self, scheme: str, where: str) -> None:
        super().__init__(where)
        self.scheme = scheme
        self.where = where


class ScopeRead:
    """The shared part of reading one scope: requests, windows recorded, chunks kept."""

    def __init__(self, run: PagedRun, scope: eng.Scope) -> None:
        self.job = run
        self.scope = scope
        self.columns: dict[int, dict[str, Any]] = {}  # window start -> its columns
        self.windows: list[WindowRecord] = []
        self.pending: list[Seen] = []
        self.logs = 0

    @property
    def client(self) -> Client:
        assert self.job.client is not None
        return self.job.client

    def where(self, start: int, end: int, p: int | None = None) -> str:
        page = f", page {p}" if p is not None else ""
        return f"{self.scope.label}, {eng.window_text(self.job.period, start, end)}{page}"

    async def get(self, start: int, end: int, p: int) -> eng.Page:
        where = self.where(start, end, p)
        params: dict[str, str | int] = {
            "p": p,
            "page_size": eng.PAGE_SIZE,
            "start_timestamp": start,
            "end_timestamp": end,
            "type": 0,
            **self.scope.params,
        }
        data = await self.client.get(self.job.url, params, self.scope.cred, where)
        try:
            return eng.parse_page(data, p, eng.PAGE_SIZE)
        except GatewayError as exc:
            raise exc.with_message(f"{where}: {exc}") from None

    def created(self, item: dict[str, Any], start: int, end: int) -> int | None:
        """The item's created_at when inside [start, end]; None (counted) when outside."""
        created = item.get("created_at")
        if type(created) is not int:
            created = to_int(created, "created_at", None, self.job.redact)
        if start <= created <= end:
            return created
        eng.check_units(created, start, end, self.where(start, end))
        return None

    def record(self, start: int, end: int, total: int, logs: list[Seen], **kw: int) -> None:
        """A window proved complete: its logs join the scope's next batch of columns."""
        self.pending.extend(logs)
        if len(self.pending) >= BATCH:
            self.flush()
        self.windows.append(
            WindowRecord(
                key_ref=self.scope.ref,
                start=start,
                end=end,
                total=total,
                ids=len(logs),
                pages=kw.get("pages", 1),
                attempts=kw.get("attempts", 1),
            )
        )
        self.logs += len(logs)
        self.job.tally.bump(windows_done=1, logs=len(logs))

    def flush(self) -> None:
        """Normalise the pending logs into one chunk of columns (batched: the fixed cost of
        building and redacting columns is paid per batch, not per window; windows of one
        page are small and many)."""
        if not self.pending:
            return
        logs = sorted(self.pending, key=BY_TIME)
        self.columns[logs[0][1] * 1_000_000 + len(self.columns)] = columns(
            logs, self.scope.ref, self.job.redact
        )
        self.pending = []


class PagedRun:
    """Reads every scope of one paged API for a period."""

    def __init__(
        self,
        settings: Settings,
        period: Period,
        api: eng.Api,
        scopes: list[eng.Scope],
        redact: Redactor,
        progress: ProgressHook | None,
    ) -> None:
        self.settings = settings
        self.period = period
        self.api = api
        self.scopes = scopes
        self.redact = redact
        self.url, self.base = eng.endpoint(settings.base_url, api.path)
        self.stat_url = eng.endpoint(settings.base_url, api.stat_path)[0] if api.stat_path else None
        self.tally = Tally(progress, len(scopes))
        self.counts = eng.Counts()
        self.client: Client | None = None
        self.end = eng.live_end(period)
        self.schemes: dict[str, str] = {}
        self.stat_quota: int | None = None
        self.warnings: list[str] = []

    def fetch(self) -> FetchResult:
        with eng.redacted_http_logs(self.redact), eng.gc_paused():
            try:
                readers = eng.run_sync(self._fetch)
            except ReconcileError as exc:
                raise eng.redacted(exc, self.redact) from None
        for r in readers:
            r.flush()
        chunks = [r.columns[s] for r in readers for s in sorted(r.columns)]
        df, others = logs_frame(chunks)
        self.counts.other_types += others
        if self.api.stat_path and self.stat_quota is not None:
            rows = int(df.loc[df["type"] == CONSUME, "quota"].sum())
            if rows != self.stat_quota:
                self.warnings.append(
                    f"the gateway's own consume sum for the period ({self.api.stat_path}) is "
                    f"{self.stat_quota:,} quota, the logs read sum to {rows:,}"
                )
        result = eng.finish_result(
            self.period,
            df,
            [w for r in readers for w in r.windows],
            [s.ref for s in self.scopes],
            self.base,
            self.counts,
            self.api.source,
            list(self.schemes.values()),
        )
        result.gateway_stat_quota = self.stat_quota
        result.warnings = list(self.warnings)
        return result

    async def _fetch(self) -> list[ScopeRead]:
        started = time.monotonic()
        async with new_http(self.settings, self.url.scheme == "https") as http:
            self.client = Client(http, self.settings, self.redact, self.tally)
            try:
                readers = await eng.run_all(self._scope(s) for s in self.scopes)
            except BaseExceptionGroup as group:
                raise eng.first_error(group) from None
            if self.api.stat_path:
                await self._stat()
        log.info(
            "fetched %d scopes in %.2fs: %d requests",
            len(self.scopes),
            time.monotonic() - started,
            self.client.requests,
        )
        self._same_id_twice(readers)
        return readers

    async def _scope(self, scope: eng.Scope) -> ScopeRead:
        from reconcile.sources.content import ContentRead
        from reconcile.sources.stable import StableRead

        start, end = self.period.start_ts, self.end
        if end < start:
            self.tally.bump(keys_done=1)
            self.schemes[scope.ref] = "stable"
            return ScopeRead(self, scope)
        probe = ScopeRead(self, scope)
        first = await probe.get(start, end, 1)  # one request validates the credential
        scheme = eng.detect_scheme(first, 0, self.api.trust_small_ids)
        reader: ScopeRead
        if scheme == "stable":
            reader = StableRead(self, scope)
            try:
                await reader.read(start, end, first)
            except IdsUnstable as exc:
                scheme = exc.scheme
                log.info("%s: ids are not stable (%s); reading by content", exc.where, scheme)
                self.tally.bump(windows_done=-len(reader.windows), logs=-reader.logs)
                first = await probe.get(start, end, 1)
        if scheme != "stable":
            reader = ContentRead(self, scope)
            await reader.read(start, end, first)
        self.schemes[scope.ref] = scheme
        self.tally.bump(keys_done=1)
        log.info("%s: %d logs (ids: %s)", scope.label, reader.logs, scheme)
        return reader

    def _same_id_twice(self, readers: list[ScopeRead]) -> None:
        """Two keys returning the same stable id: the same token configured twice."""
        from reconcile.sources.stable import StableRead

        owner: dict[int, tuple[str, Seen]] = {}
        stable = [r for r in readers if isinstance(r, StableRead)]
        if len(stable) < 2:
            return
        for r in stable:
            for log_id, row in r.rows.items():
                first = owner.setdefault(log_id, (r.scope.ref, row))
                if first[0] == r.scope.ref:
                    continue
                if content_key(first[1]) == content_key(row):
                    raise InputError(
                        f"keys {first[0]} and {r.scope.ref} return the same log {log_id}: "
                        "they are the same token; configure each token once",
                        field="RECONCILE_API_KEYS",
                    )
                raise GatewayError(
                    f"keys {first[0]} and {r.scope.ref}: the gateway returned different logs "
                    f"under the same id {log_id}"
                )

    async def _stat(self) -> None:
        """The gateway's own consume sum over the period, per scope, added up."""
        assert self.client is not None
        assert self.stat_url is not None
        total = 0
        for scope in self.scopes:
            params: dict[str, str | int] = {
                "type": CONSUME,
                "start_timestamp": self.period.start_ts,
                "end_timestamp": self.end,
                **scope.params,
            }
            try:
                data = await self.client.get(
                    self.stat_url, params, scope.cred, f"{scope.label}, stat"
                )
                quota = data.get("quota") if isinstance(data, dict) else None
                if type(quota) is not int:
                    raise GatewayError("data.quota is not an integer")
            except GatewayError as exc:
                self.warnings.append(
                    f"the gateway's own sum ({self.api.stat_path}) could not be read, so the "
                    f"rows' sum is unchecked against it: {exc}"
                )
                return
            total += quota
        self.stat_quota = total


def fetch_paged(
    settings: Settings,
    period: Period,
    api: eng.Api,
    scopes: list[eng.Scope],
    redact: Redactor,
    progress: ProgressHook | None = None,
) -> FetchResult:
    """Every log of `period` in every scope, proved complete; see the module docstring."""
    return PagedRun(settings, period, api, scopes, redact, progress).fetch()
