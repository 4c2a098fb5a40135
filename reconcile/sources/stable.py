"""Reading a scope whose log ids are real: windows of up to `window_rows`, pages in parallel.

One probe gives the period's `total`; the period is cut into time windows sized to hold at
most `settings.window_rows` logs, and a window still holding more is cut again, so offsets
stay shallow. Each window's pages are requested concurrently.

Completeness. A window is done when the distinct ids read equal the gateway's `total`, the
total did not move while paging, and the pages agree with it: the last page short of a full
page, or, when it is full, the page after it empty (a `total` too small by a multiple of the
page size is otherwise believed, and logs vanish). Offset paging on a live table shifts rows
when logs are inserted or deleted meanwhile, so a window that disagrees is read again as
ranges that fit one page each (one query: nothing shifts within it), then recounted, and only
ranges whose count or newest logs disagree are read again. Bounded attempts. Parts of a split
window that do not shrink mean the gateway ignores the time filter: fail at once.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field

from reconcile.errors import IncompleteRead
from reconcile.sources import engine as eng
from reconcile.sources.items import Seen, content_key, to_int
from reconcile.sources.paged import IdsUnstable, PagedRun, ScopeRead

log = logging.getLogger("reconcile.sources.engine")

WINDOW_FILL = 0.75  # new windows aim at this fraction of settings.window_rows


@dataclass
class _Window:
    start: int
    end: int
    rows: dict[int, Seen] = field(default_factory=dict)
    total: int = 0
    pages: int = 0
    attempts: int = 1


class StableRead(ScopeRead):
    """The windows of one scope, fetched by id and proved complete."""

    def __init__(self, run: PagedRun, scope: eng.Scope) -> None:
        super().__init__(run, scope)
        self.rows: dict[int, Seen] = {}
        self._fill = max(eng.PAGE_SIZE, int(run.settings.window_rows * WINDOW_FILL))

    async def read(self, start: int, end: int, first: eng.Page) -> None:
        if first.total <= self.job.settings.window_rows or start == end:
            self.job.tally.bump(windows_total=1)
            await self.window(start, end, first)
        else:
            await self.split_window(start, end, first.total, math.ceil(first.total / self._fill))
        self.check_wrap()

    def check_wrap(self) -> None:
        """Ids below 1024 that fall back as time goes on are id % 1024, not ids.

        A gateway with few logs shows real ids below 1024 too, so small ids alone prove
        nothing; but real ids grow with time (new-api stamps a log as it inserts it), while
        id % 1024 wraps to 0 after 1023. Rows that never collided are then read again by
        content, so the ledger is never matched on ids that are not ids.
        """
        if not self.rows or max(self.rows) >= 1024:
            return
        by_time = sorted(self.rows.values(), key=lambda r: (r[1], r[0]))
        wraps = sum(a[0] - b[0] > 512 for a, b in itertools.pairwise(by_time))
        # a wrap is rare (once per 1024 logs of the whole gateway); ids that jump back and
        # forth all the time are several real sequences interleaved, not a wrap
        if 1 <= wraps <= max(1, len(by_time) // 200):
            raise IdsUnstable("mod1024", self.scope.label)

    async def split_window(self, start: int, end: int, total: int, parts: int) -> None:
        ranges = eng.split(start, end, max(2, parts))
        firsts = await eng.run_all(self.get(a, b, 1) for a, b in ranges)
        eng.check_shrinks(total, [p.total for p in firsts], self.where(start, end))
        self.job.tally.bump(windows_total=len(ranges))
        await eng.run_all(
            self.window(a, b, page) for (a, b), page in zip(ranges, firsts, strict=True)
        )

    async def window(self, start: int, end: int, first: eng.Page) -> None:
        if first.total > self.job.settings.window_rows:
            if end > start:
                self.job.tally.bump(windows_total=-1)
                await self.split_window(
                    start, end, first.total, math.ceil(first.total / self._fill)
                )
                return
            log.warning(
                "%s: %d logs within one second; paging it with deep offsets",
                self.where(start, end),
                first.total,
            )
        w = _Window(start, end, total=first.total, pages=1)
        self.ingest(w, first, 1, count=True)
        size = first.page_size
        pages = eng.pages_needed(first.total, size)
        rest = await eng.run_all(self.get(start, end, p) for p in range(2, pages + 1))
        totals = {first.total}
        last = rest[-1] if rest else first
        for p, page in enumerate(rest, start=2):
            w.pages += 1
            totals.add(page.total)
            self.ingest(w, page, p, count=True)
        agrees = len(last.items) == first.total - (pages - 1) * size
        if agrees and first.total and len(last.items) == size:
            after = await self.get(start, end, pages + 1)  # a full last page proves nothing
            w.pages += 1
            agrees = not after.items
            self.ingest(w, after, pages + 1, count=True)
        if len(totals) > 1 or len(w.rows) != first.total or not agrees:
            log.info(
                "%s: rows moved while paging (totals %s, %d ids read); repairing",
                self.where(start, end),
                sorted(totals),
                len(w.rows),
            )
            await self.repair(w)
        self.finish(w)

    async def repair(self, w: _Window) -> None:
        """Re-read the window until the gateway's answer and the rows held agree (bounded).

        The first round re-reads the whole window as ranges small enough for one answer each;
        later rounds recount and re-read only ranges that disagree: after a read without
        offsets, a deletion shows in the count and an insertion among the newest logs of its
        range (ids only grow, and the gateway answers newest first).
        """
        trust = False
        last = -1
        while True:
            if w.attempts >= eng.MAX_WINDOW_ATTEMPTS:
                raise IncompleteRead(
                    f"{self.where(w.start, w.end)}: the logs kept changing while they were read "
                    f"({w.attempts} attempts; last count {w.total}, {len(w.rows)} ids read); "
                    "re-run when the period is closed",
                    key_ref=self.scope.ref,
                )
            w.attempts += 1
            page = await self.get(w.start, w.end, 1)
            w.pages += 1
            w.total = page.total
            steady = page.total == last  # the window's count did not move since last round
            last = page.total
            if await self.settle(w, w.start, w.end, page, trust, steady):
                return
            trust = True

    async def settle(
        self, w: _Window, start: int, end: int, page: eng.Page, trust: bool, steady: bool = False
    ) -> bool:
        """Make w's rows in [start, end] agree with the gateway, given page 1 of that range.

        With `trust`, a range whose count and newest logs match the rows held is kept as it
        is; without, every range is read again. True when everything already agreed, or
        when parts that each proved themselves contradict a count that stays the same
        (`steady`: a gateway whose totals are wrong, not a table that is changing).
        """
        whole = len(page.items) == page.total < page.page_size
        if whole or (len(page.items) < page.total < page.page_size):
            # the whole range came in one answer (or rows moved: read again next round)
            self.replace(w, start, end, [page])
            return whole
        # A page fuller than its total (or full while the total says it all fits) shows the
        # total is wrong: only the parts can prove the range.
        believable = len(page.items) <= page.total and not (
            len(page.items) >= page.page_size >= page.total
        )
        if believable and trust and self.agrees(w, start, end, page):
            return True
        if start == end:
            pages = [page]
            while pages[-1].items:  # to the first empty page: no total is taken on trust
                pages.append(await self.get(start, end, len(pages) + 1))
            w.pages += len(pages) - 1
            self.replace(w, start, end, pages)
            return not believable
        mid = (start + end) // 2
        left, right = await eng.run_all([self.get(start, mid, 1), self.get(mid + 1, end, 1)])
        w.pages += 2
        eng.check_shrinks(page.total, [left.total, right.total], self.where(start, end))
        parts = await eng.run_all(
            [
                self.settle(w, start, mid, left, trust, steady),
                self.settle(w, mid + 1, end, right, trust, steady),
            ]
        )
        # Parts each proved (whole, or agreeing with the rows held) outrank a count they
        # contradict; a count believed is re-checked in a later round before it is settled.
        return (not believable or (trust and steady)) and all(parts)

    def agrees(self, w: _Window, start: int, end: int, page: eng.Page) -> bool:
        """The rows held in [start, end] number page.total and include every log on page 1."""
        held = {log_id for log_id, r in w.rows.items() if start <= r[1] <= end}
        shown = {to_int(item.get("id"), "id", None, self.job.redact) for item in page.items}
        return len(held) == page.total and shown <= held

    def replace(self, w: _Window, start: int, end: int, pages: list[eng.Page]) -> None:
        for log_id in [i for i, r in w.rows.items() if start <= r[1] <= end]:
            del w.rows[log_id]
        for p, page in enumerate(pages, start=1):
            self.ingest(w, page, p, count=False, bounds=(start, end))

    def ingest(
        self,
        w: _Window,
        page: eng.Page,
        p: int,
        *,
        count: bool,
        bounds: tuple[int, int] | None = None,
    ) -> None:
        """Add a page's rows to the window: outside rows dropped, repeats kept once."""
        lo, hi = bounds or (w.start, w.end)
        offset = (p - 1) * page.page_size
        if eng.detect_scheme(page, offset, True) == "position" and offset + len(page.items) > 1:
            raise IdsUnstable("position", self.where(w.start, w.end, p))
        counts = self.job.counts
        rows = w.rows
        for item in page.items:
            log_id = item.get("id")
            if type(log_id) is not int:
                log_id = to_int(log_id, "id", None, self.job.redact)
            created = self.created(item, lo, hi)
            if created is None:
                if count:
                    counts.outside_window += 1
                continue
            row = (log_id, created, item)
            old = rows.get(log_id)
            if old is not None:
                if content_key(old) != content_key(row):
                    raise IdsUnstable("mod1024", self.where(w.start, w.end, p))
                if count:
                    counts.duplicates += 1
            rows[log_id] = row

    def finish(self, w: _Window) -> None:
        for log_id, row in w.rows.items():
            old = self.rows.get(log_id)
            if old is not None and content_key(old) != content_key(row):
                raise IdsUnstable("mod1024", self.scope.label)
            self.rows[log_id] = row
        self.record(
            w.start, w.end, w.total, list(w.rows.values()), pages=w.pages, attempts=w.attempts
        )
