"""Local days and ISO times across a daylight-saving change, and the offsets ISO writes."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from reconcile.core.timefmt import day_texts, iso_times, local_days, offset_text

NY = ZoneInfo("America/New_York")


def test_times_across_a_clock_change_match_the_standard_library() -> None:
    # Midnight at -04:00, 01:30 twice (EDT, then EST), and midnight at -05:00.
    stamps = [1793505599, 1793505600, 1793511000, 1793514600, 1793595599, 1793595600]
    got = iso_times(np.array(stamps, dtype=np.int64), NY)
    assert got[2:4].tolist() == ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00"]
    assert got.tolist() == [datetime.fromtimestamp(s, NY).isoformat() for s in stamps]
    days = local_days(np.array(stamps, dtype=np.int64), NY)
    want = [
        (datetime.fromtimestamp(s, NY).date() - datetime(1970, 1, 1).date()).days for s in stamps
    ]
    assert days.tolist() == want
    texts = day_texts(np.array(stamps, dtype=np.int64), NY)
    assert texts.tolist() == [datetime.fromtimestamp(s, NY).date().isoformat() for s in stamps]


def test_offsets_are_written_as_iso_does() -> None:
    assert [offset_text(s) for s in (28800, -12600, 0, 1172)] == [
        "+08:00",
        "-03:30",
        "+00:00",
        "+00:19:32",
    ]
    assert iso_times(np.array([], dtype=np.int64), NY).tolist() == []
