"""Read a period's logs straight from the gateway's own database (new-api's `logs` table).

Why. An operator holds the logs: reading them through the HTTP API at 100 per page is slow,
and current servers hide the row ids from token users. The database has the real ids
(id_scheme "stable"), every log type, and answers a month in one pass.

Scope. A gateway's table holds every user's logs, and a reconciliation is about some of them:
  - RECONCILE_API_KEYS: the logs of those tokens (`tokens.key` holds the key without `sk-`;
    logs point at it by `token_id`), tagged with the same key refs the HTTP source uses, so
    both sources give the same snapshot;
  - else RECONCILE_TOKEN_NAMES: logs whose `token_name` is one of them (of RECONCILE_USER_ID
    only, when it is set); `*` means every log in the table, the operator's whole gateway;
  - else RECONCILE_USER_ID: every log of that user (topups and refunds included).
With none of them set the read is refused: reading everyone's logs by accident would report
them all as missing from a ledger.

How. The period is read one calendar day (in the period's time zone) at a time. Each day is
one read-only snapshot: a count of the scope's logs per key ref, then the rows themselves,
ordered by (created_at, id), through a server-side cursor in chunks of CHUNK_ROWS. Each chunk
becomes NumPy and Arrow columns at once, so Python objects never outlive a chunk and memory
follows the result, not the driver. A day whose rows disagree with its count (only possible on
a database without snapshot reads) is read again, then reported (exit 3).
"""

from __future__ import annotations

import itertools
import logging
import time as clock
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reconcile.core.period import Period
from reconcile.core.results import FetchResult, WindowRecord
from reconcile.core.schema import TYPE_NAMES
from reconcile.errors import GatewayError, InputError
from reconcile.settings import ApiKey, Settings
from reconcile.sources.dbconn import LogDatabase, connect
from reconcile.sources.dbframe import COLUMNS, OPTIONAL, POOL, chunk_columns, logs_frame
from reconcile.sources.dsn import FIELD, parse_dsn
from reconcile.sources.engine import LIVE_MARGIN
from reconcile.sources.items import row_keys
from reconcile.sources.progress import FetchProgress, ProgressHook

log = logging.getLogger(__name__)

CHUNK_ROWS = 20_000  # rows per fetch from the cursor: a few MB of Python objects at a time
MAX_ATTEMPTS = 3  # reads of one day before its count and rows are declared inconsistent
ALL = "*"  # RECONCILE_TOKEN_NAMES=* : every log in the table

_KEPT_TYPES = np.array(sorted(TYPE_NAMES), dtype=np.int64)

#: Receives each day's logs and the end of the time read so far (unix s, exclusive).
DaySink = Callable[[pd.DataFrame, int], None]


@dataclass
class Scope:
    """Which logs are read and how each is tagged: `refs` maps a value of `column` (token_id
    or token_name) to its key ref; with no column every row gets the one ref in `key_refs`."""

    key_refs: list[str]
    column: str | None = None
    refs: dict[Any, str] = field(default_factory=dict)
    user_id: int | None = None
    description: str = ""


class DatabaseSource:
    """The LogSource reading new-api's `logs` table from RECONCILE_LOG_DSN."""

    name = "database"

    def __init__(self, settings: Settings) -> None:
        if settings.log_dsn is None:
            raise InputError("no log database: set RECONCILE_LOG_DSN", field=FIELD)
        self._settings = settings
        self._dsn = parse_dsn(settings.log_dsn)

    def fetch(self, period: Period, progress: ProgressHook | None = None) -> FetchResult:
        return self.stream(period, None, progress)

    def stream(
        self, period: Period, sink: DaySink | None, progress: ProgressHook | None = None
    ) -> FetchResult:
        """Read the period a day at a time. With a `sink`, each day's logs go to it with the
        end of the time read (unix s, exclusive) as soon as the day is proven complete, and are
        not kept: the FetchResult's logs are empty. Without, the FetchResult holds them all."""
        fetched_at = datetime.now(UTC).replace(microsecond=0)
        db = connect(self._dsn)
        try:
            return self._fetch(db, period, progress, fetched_at, sink)
        finally:
            db.close()

    def _fetch(
        self,
        db: LogDatabase,
        period: Period,
        progress: ProgressHook | None,
        fetched_at: datetime,
        sink: DaySink | None,
    ) -> FetchResult:
        started = clock.monotonic()
        present = db.columns("logs")
        if not present:
            raise InputError(
                f"{self._dsn.display} has no `logs` table: is this the gateway's (log) database?",
                field=FIELD,
            )
        scope = self._scope(db)
        needed = {c for _, c, _ in COLUMNS} - OPTIONAL
        needed |= {scope.column} if scope.column else set()
        needed |= {"user_id"} if scope.user_id is not None else set()
        missing = sorted(needed - present)
        if missing:
            raise InputError(
                f"{self._dsn.display}: the `logs` table lacks columns {', '.join(missing)}: "
                "is this new-api's database?",
                field=FIELD,
            )
        reader = _Reader(db, scope, present, progress, period.tz)
        end = _last_second(period)
        days = _days(period, end)
        reader.tally(windows_total=len(days), keys_total=len(scope.key_refs))
        ids: list[np.ndarray[Any, Any]] = []  # the month's ids: 8 bytes a log
        for start, stop in days:
            reader.window(start, stop)
            if sink is not None:
                day = logs_frame(reader.chunks)  # empties reader.chunks
                # a day's row keys are the month's: logs of equal content share created_at
                day["row_key"] = row_keys(day)
                ids.append(day["id"].to_numpy())
                sink(day, stop + 1)
                del day
        reader.tally(keys_done=len(scope.key_refs))
        # without a sink the chunks become one frame at the end, never copied (dbframe.py)
        logs = logs_frame(reader.chunks)
        logs["row_key"] = row_keys(logs)  # the same table an HTTP source hands on
        every = (
            logs["id"].to_numpy() if sink is None else np.concatenate([*ids, logs["id"].to_numpy()])
        )
        if len(np.unique(every)) != len(every):
            raise GatewayError(
                f"log database {self._dsn.display}: the logs table holds the same id twice "
                "in this period; its ids cannot identify logs"
            )
        log.info(
            "read %d logs (%s) from %s in %.2fs",
            len(every),
            scope.description,
            self._dsn.display,
            clock.monotonic() - started,
        )
        return FetchResult(
            period=period,
            logs=logs,
            windows=reader.windows,
            key_refs=scope.key_refs,
            fetched_at=fetched_at,
            base_url=self._dsn.display,
            other_types=reader.other_types,
            source=self.name,
            id_scheme="stable",
        )

    def _scope(self, db: LogDatabase) -> Scope:
        settings = self._settings
        keys = settings.keys()
        names = settings.token_name_list()
        user = settings.user_id
        if keys:
            return _key_scope(db, keys, self._dsn.display)
        if ALL in names and len(names) > 1:
            raise InputError(
                "`*` reads every log; give it alone, or give token names",
                field="RECONCILE_TOKEN_NAMES",
            )
        if names == [ALL]:
            if user is not None:
                return Scope([f"user-{user}"], user_id=user, description=f"user {user}")
            return Scope(["all"], description="every log")
        if names:
            refs = _NameRefs({name: f"token:{name}" for name in names})
            who = f" of user {user}" if user is not None else ""
            return Scope(
                list(refs.values()),
                "token_name",
                refs,
                user,
                f"tokens named {', '.join(names)}{who}",
            )
        if user is not None:
            return Scope([f"user-{user}"], user_id=user, description=f"user {user}")
        raise InputError(
            "which logs? set RECONCILE_API_KEYS (those tokens), RECONCILE_TOKEN_NAMES (tokens "
            "by name; * for every log) or RECONCILE_USER_ID (one user's logs)",
            field=FIELD,
        )


class _NameRefs(dict[Any, str]):
    """Token name -> key ref, also for the names the database's comparison matched and Python's
    does not: MySQL's default collation ignores case and trailing spaces, as the gateway's own
    token_name filter then does."""

    def __missing__(self, value: Any) -> str:
        folded = {str(name).casefold().rstrip(): ref for name, ref in self.items()}
        ref = folded.get(str(value).casefold().rstrip())
        if ref is None:
            raise GatewayError(f"the log database returned a log of token {value!r}, not asked for")
        self[value] = ref
        return ref


def _key_scope(db: LogDatabase, keys: list[ApiKey], where: str) -> Scope:
    """The token ids of the configured keys, looked up in `tokens` (deleted tokens too)."""
    if not {"id", "key"} <= db.columns("tokens"):
        raise InputError(
            f"{where} has no `tokens` table (logs kept apart with LOG_SQL_DSN?): keys cannot "
            "be looked up; scope by RECONCILE_TOKEN_NAMES or RECONCILE_USER_ID instead",
            field="RECONCILE_API_KEYS",
        )
    bare = {k.secret.get_secret_value().removeprefix("sk-"): k for k in keys}
    marks = ",".join([db.param] * len(bare))
    rows = db.query(
        f"SELECT id, {db.quote('key')} FROM tokens WHERE {db.quote('key')} IN ({marks})",  # noqa: S608 (placeholders only)
        list(bare),
    )
    # exact matches only: MySQL's default collation would also return a key differing in case
    refs = {int(token_id): bare[str(key)].ref for token_id, key in rows if str(key) in bare}
    unknown = [k.ref for k in keys if k.ref not in refs.values()]
    if unknown:
        raise InputError(
            f"API key {', '.join(unknown)} is not in the gateway's tokens table; check that "
            "the key is right and RECONCILE_LOG_DSN is this gateway's database",
            field="RECONCILE_API_KEYS",
        )
    return Scope([k.ref for k in keys], "token_id", refs, None, f"{len(keys)} API keys")


def _last_second(period: Period) -> int:
    """The period's last second to read: a period not over stops LIVE_MARGIN before now,
    as the HTTP source does (the newest logs are still being written)."""
    end = period.end_ts - 1
    live_end = int(clock.time()) - LIVE_MARGIN
    if end > live_end:
        end = max(live_end, period.start_ts - 1)
        log.warning("the period %s is not over: reading its logs up to a minute ago", period.label)
    return end


def _days(period: Period, end: int) -> list[tuple[int, int]]:
    """[start, end] (inclusive seconds) cut at the midnights of the period's time zone."""
    tz = period.tz
    bounds = [period.start_ts]
    day = period.start.astimezone(tz).date()
    while True:
        day += timedelta(days=1)
        ts = int(datetime.combine(day, time(0), tzinfo=tz).timestamp())
        if ts > end:
            break
        bounds.append(ts)
    bounds.append(end + 1)
    return [(a, b - 1) for a, b in itertools.pairwise(bounds) if b > a]


class _Reader:
    """Reads windows of the scope's logs into column chunks, proving each window complete."""

    def __init__(
        self,
        db: LogDatabase,
        scope: Scope,
        present: set[str],
        hook: ProgressHook | None,
        tz: ZoneInfo,
    ) -> None:
        self.db = db
        self.tz = tz
        self.scope = scope
        self.hook = hook
        self.now = FetchProgress()
        self.chunks: list[dict[str, Any]] = []
        self.windows: list[WindowRecord] = []
        self.other_types = 0
        q = db.quote
        exprs = []
        for _, column, default in COLUMNS:
            if column not in present:
                exprs.append(default)
            elif default:
                value = db.false if default == "FALSE" else default
                exprs.append(f"COALESCE({q(column)}, {value})")
            else:
                exprs.append(q(column))
        scope_col = q(scope.column) if scope.column else "NULL"
        where = [f"{q('created_at')} >= {db.param}", f"{q('created_at')} <= {db.param}"]
        self.params: list[Any] = []
        if scope.column:
            marks = ",".join([db.param] * len(scope.refs))
            where.append(f"{db.unindexed(scope.column)} IN ({marks})")
            self.params += list(scope.refs)
        if scope.user_id is not None:
            where.append(f"{db.unindexed('user_id')} = {db.param}")
            self.params.append(scope.user_id)
        cond = " AND ".join(where)
        group = f" GROUP BY {scope_col}" if scope.column else ""
        # Only our column names and placeholders are interpolated; values go as parameters.
        self.count_sql = f"SELECT {scope_col}, count(*) FROM logs WHERE {cond}{group}"  # noqa: S608
        self.rows_sql = (
            f"SELECT {', '.join(exprs)}, {scope_col} FROM logs WHERE {cond} "  # noqa: S608
            f"ORDER BY {q('created_at')}, {q('id')}"
        )

    def tally(self, **delta: int) -> None:
        self.now = replace(self.now, **{k: getattr(self.now, k) + v for k, v in delta.items()})
        if self.hook is not None:
            self.hook(self.now)

    def tag(self) -> str | dict[Any, str]:
        """What tags each row with its key ref: the one ref, or the scope column's map."""
        return self.scope.refs if len(self.scope.key_refs) > 1 else self.scope.key_refs[0]

    def window(self, start: int, end: int) -> None:
        attempts = 0
        while True:
            attempts += 1
            with self.db.snapshot():
                count = self.db.query(self.count_sql, [start, end, *self.params])
                tag = self.tag()
                counted = Counter[str]()
                for value, n in count:
                    counted[tag if isinstance(tag, str) else tag[value]] += int(n)
                chunks, read, pages = self.read(start, end)
            if read == counted:
                break
            what = (
                f"{self.when(start)} .. {self.when(end)}: counted {counted.total()} logs, "
                f"read {read.total()}"
            )
            if attempts >= MAX_ATTEMPTS:
                raise GatewayError(
                    f"log database {self.db.dsn.display}: window {what}, {attempts} times; the "
                    "database gives no consistent snapshot of it"
                )
            log.warning("window %s; reading it again", what)
        for chunk in chunks:
            self.keep(chunk)
        for ref in self.scope.key_refs:
            self.windows.append(
                WindowRecord(ref, start, end, counted[ref], read[ref], pages, attempts)
            )
        self.tally(windows_done=1, logs=read.total())

    def when(self, ts: int) -> str:
        return datetime.fromtimestamp(ts, self.tz).isoformat()

    def read(self, start: int, end: int) -> tuple[list[dict[str, Any]], Counter[str], int]:
        chunks, read, pages = [], Counter[str](), 0
        tag = self.tag()
        for rows in self.db.stream(self.rows_sql, [start, end, *self.params], CHUNK_ROWS):
            pages += 1
            chunk, refs = chunk_columns(rows, tag, self.db.dsn.display)
            read.update(refs)
            chunks.append(chunk)
            self.tally(pages=1)
        return chunks, read, pages

    def keep(self, chunk: dict[str, Any]) -> None:
        """Keep the chunk's consume/refund/topup/error rows; count the others (manage,
        system) and drop them here, so the frame is never reordered or copied later."""
        kept = np.isin(chunk["type"], _KEPT_TYPES)
        if not kept.all():
            self.other_types += int((~kept).sum())
            index = pa.array(np.flatnonzero(kept))
            chunk = {
                name: pc.take(col, index, memory_pool=POOL)
                if isinstance(col, pa.Array)
                else col[kept]
                for name, col in chunk.items()
            }
        if len(chunk["id"]):
            self.chunks.append(chunk)
