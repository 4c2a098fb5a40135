"""The billing period: half-open [start, end) in a named time zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reconcile.errors import InputError

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Period:
    """A half-open interval of wall-clock time; a log at exactly `end` belongs to the next one."""

    start: datetime
    end: datetime
    label: str

    @property
    def tz(self) -> ZoneInfo:
        tz = self.start.tzinfo
        assert isinstance(tz, ZoneInfo)
        return tz

    @property
    def timezone(self) -> str:
        return self.tz.key

    @property
    def start_ts(self) -> int:
        return int(self.start.timestamp())

    @property
    def end_ts(self) -> int:
        """Exclusive upper bound in unix seconds."""
        return int(self.end.timestamp())

    def contains(self, ts: int) -> bool:
        return self.start_ts <= ts < self.end_ts


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(f"unknown time zone {name!r}", field="timezone") from exc


def _day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InputError(f"{text!r} is not a date (YYYY-MM-DD)", field=field) from exc


def parse_period(period: str | None, start: str | None, end: str | None, timezone: str) -> Period:
    """Build a Period from `--period YYYY-MM` or `--start/--end YYYY-MM-DD` in `timezone`."""
    tz = zone(timezone)
    if period is not None:
        if start is not None or end is not None:
            raise InputError("give either --period or --start/--end, not both", field="--period")
        m = _MONTH.match(period)
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise InputError(f"{period!r} is not a month (YYYY-MM)", field="--period")
        year, month = int(m.group(1)), int(m.group(2))
        first = date(year, month, 1)
        nxt = date(year + (month == 12), month % 12 + 1, 1)
        label = period
    else:
        if start is None or end is None:
            raise InputError("give --period YYYY-MM, or both --start and --end", field="--period")
        first, nxt = _day(start, "--start"), _day(end, "--end")
        if nxt <= first:
            raise InputError(f"--end {end} is not after --start {start}", field="--end")
        label = f"{first.isoformat()}_{nxt.isoformat()}"
        if nxt == first + timedelta(days=1):
            label = first.isoformat()
    return Period(
        start=datetime(first.year, first.month, first.day, tzinfo=tz),
        end=datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz),
        label=label,
    )
