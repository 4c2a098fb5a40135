"""FrameStore cuts logs into the period's local days and gives them back whole."""

from __future__ import annotations

import pandas as pd

from reconcile.core.logstore import FrameStore, day_edges
from reconcile.core.period import parse_period


def test_days_follow_local_midnights_and_concatenate_to_every_log() -> None:
    period = parse_period("2026-10", None, None, "Asia/Shanghai")
    edges = day_edges(period)
    # one log just before and one at each local midnight, out of order, plus one at the end
    times = [int(e) for e in edges[1:-1]] + [int(e) - 1 for e in edges[1:-1]]
    times = [*times[::-1], int(edges[-1]) - 1]
    logs = pd.DataFrame({"id": range(len(times)), "created_at": times})
    store = FrameStore(logs, period)

    assert store.days == 31
    assert len(store) == len(times)
    for i in range(store.days):
        day = store.day(i)
        assert ((day["created_at"] >= edges[i]) & (day["created_at"] < edges[i + 1])).all()
    whole = pd.concat([store.day(i, ["id"]) for i in range(store.days)], ignore_index=True)
    assert sorted(whole["id"]) == list(range(len(times)))
    assert whole["id"].tolist() == store.columns(["id"])["id"].tolist()
    # within a day the frame's own order is kept (the day's later log was given first)
    assert store.day(1)["created_at"].tolist() == sorted(store.day(1)["created_at"].tolist())[::-1]
