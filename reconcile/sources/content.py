"""Reading a scope whose ids are not identities (row positions, id % 1024): by content.

Without ids, a log seen twice cannot be told from two equal logs, so no answer may overlap
another: every window is read in ONE request, which the gateway answers from one query.
A window whose answer is whole (a short page holding exactly `total` logs) is complete; a
window holding more is cut into parts sized to fit a page (`CONTENT_FILL` of it, so a part
rarely overflows and needs cutting again), down to one second. A second holding more than a
page cannot be read in one request: it is paged to the first empty page twice, and the two
reads must agree as multisets of content (and with their totals), else it is read again.

Logs are counted as multisets throughout: two logs of equal content in one window are two
logs. Windows never overlap, so a log is never counted twice; a 429 or 5xx only repeats a
request, whose answer replaces nothing. A log inserted while reading lands in a window read
before or after it: before, it is not in the period as read (the period is closed) or is
picked up by that window's own re-read when its answer was not whole.
"""

from __future__ import annotations

import logging
import math
from collections import Counter

from reconcile.errors import IncompleteRead
from reconcile.sources import engine as eng
from reconcile.sources.items import Seen, content_key, to_int
from reconcile.sources.paged import ScopeRead

log = logging.getLogger("reconcile.sources.engine")

#: New windows aim at this fraction of a page: with logs spread evenly, a part of 80 expected
#: logs overflows a page of 100 rarely (measured in benchmarks/bench_fetch.py).
CONTENT_FILL = 0.8


class ContentRead(ScopeRead):
    """The one-page windows of one scope, each proved whole."""

    async def read(self, start: int, end: int, first: eng.Page) -> None:
        self.job.tally.bump(windows_total=1)
        await self.window(start, end, first, 1)

    def inside(self, page: eng.Page, start: int, end: int, count: bool = True) -> list[Seen]:
        rows: list[Seen] = []
        for item in page.items:
            created = self.created(item, start, end)
            if created is None:
                self.job.counts.outside_window += count
                continue
            log_id = item.get("id")
            if type(log_id) is not int:
                log_id = to_int(log_id, "id", None, self.job.redact) if log_id is not None else 0
            rows.append((log_id, created, item))
        return rows

    async def window(self, start: int, end: int, page: eng.Page, attempt: int) -> None:
        size = page.page_size
        n = len(page.items)
        if n == page.total < size:  # whole: one query answered all of it
            self.record(start, end, page.total, self.inside(page, start, end), attempts=attempt)
            return
        if n < page.total < size:  # rows moved between the count and the page: ask again
            if attempt >= eng.MAX_WINDOW_ATTEMPTS:
                raise IncompleteRead(
                    f"{self.where(start, end)}: the gateway counts {page.total} logs but "
                    f"returns {n} on one page of {size}, {attempt} times; re-run when the "
                    "period is closed",
                    key_ref=self.scope.ref,
                )
            again = await self.get(start, end, 1)
            await self.window(start, end, again, attempt + 1)
            return
        # more than a page, or a total the page contradicts: cut the window
        if start == end:
            await self.second(start, page)
            return
        fill = max(1, int(size * CONTENT_FILL))
        ranges = eng.split(start, end, max(2, math.ceil(max(page.total, n) / fill)))
        firsts = await eng.run_all(self.get(a, b, 1) for a, b in ranges)
        eng.check_shrinks(page.total, [p.total for p in firsts], self.where(start, end))
        self.job.tally.bump(windows_total=len(ranges) - 1)
        await eng.run_all(self.window(a, b, p, 1) for (a, b), p in zip(ranges, firsts, strict=True))

    async def second(self, at: int, first: eng.Page) -> None:
        """One second holding more logs than a page: two full reads that must agree."""
        log.warning(
            "%s: %d logs within one second; reading it twice by pages",
            self.where(at, at),
            first.total,
        )
        seen: list[str] = []
        for attempt in range(1, eng.MAX_WINDOW_ATTEMPTS + 1):
            one, pages_one, total_one = await self._pages(at, first)
            two, pages_two, total_two = await self._pages(at, None)
            a = Counter(map(content_key, one))
            if total_one == total_two == len(one) == len(two) and a == Counter(
                map(content_key, two)
            ):
                self.record(at, at, total_one, one, pages=pages_one + pages_two, attempts=attempt)
                return
            seen.append(f"totals {total_one}/{total_two}, {len(one)}/{len(two)} logs")
            first = await self.get(at, at, 1)
        raise IncompleteRead(
            f"{self.where(at, at)}: two reads of this second never agreed ({'; '.join(seen)})",
            key_ref=self.scope.ref,
        )

    async def _pages(self, at: int, first: eng.Page | None) -> tuple[list[Seen], int, int]:
        """Every page of one second up to the first empty one: (logs, pages, total)."""
        if first is None:
            first = await self.get(at, at, 1)
        count = eng.pages_needed(first.total, first.page_size) + 1  # the page after the last
        pages = [first, *await eng.run_all(self.get(at, at, p) for p in range(2, count + 1))]
        while pages[-1].items:
            pages.append(await self.get(at, at, len(pages) + 1))
        rows = [row for page in pages for row in self.inside(page, at, at, count=False)]
        return rows, len(pages), first.total
