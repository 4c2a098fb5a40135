"""Faults the built-in gateway injects every Nth request: what a real gateway's proxies do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Faults:
    """What goes wrong, every Nth request (0 = never). Counting is over all requests served.

    When several faults fall on the same request, the first in this order wins: 429, 5xx,
    timeout, truncate, fail. `insert_every`/`delete_every` apply to requests answered normally.
    """

    latency: float = 0.0  # seconds added to every request
    status_429_every: int = 0
    retry_after: float = 1.0  # the 429's Retry-After, seconds
    status_500_every: int = 0
    error_status: int = 500  # the status sent by status_500_every (500, 502, 503, 504)
    timeout_every: int = 0  # hang for hang_seconds before answering
    hang_seconds: float = 5.0
    truncate_every: int = 0  # cut the body short (alternately: short read / invalid JSON)
    fail_every: int = 0  # HTTP 200 with success:false and fail_message
    fail_message: str = "查询日志失败"
    insert_every: int = 0  # insert a row for the key into the queried range, then answer
    delete_every: int = 0  # delete a row of the key in the queried range, then answer
    seed: int = 0  # for the inserted rows' times and the deleted rows' choice


def hits(every: int, n: int) -> bool:
    return every > 0 and n % every == 0
