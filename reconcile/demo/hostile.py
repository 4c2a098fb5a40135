"""The built-in gateway misbehaving on purpose, as gateways and proxies in the wild do.

Each switch is one defect seen in the field; the adversarial tests turn one on and check the
client either reads the period exactly or stops with exit 3 and a line saying what it saw.
"""

from __future__ import annotations

import gzip
import time
from dataclasses import dataclass
from typing import Any

PAGE = 100


@dataclass(frozen=True)
class Hostile:
    gzip: bool = False  # Content-Encoding: gzip on every answer (nginx, CDNs)
    lie_total: bool = False  # `total` one page too small when there is more than a page
    ignore_filters: bool = False  # start_timestamp/end_timestamp ignored
    drip_seconds: float = 0.0  # the body sent one byte at a time, this long between bytes
    echo_secret: bool = False  # the presented credential copied into token_name and content
    milliseconds: bool = False  # created_at in milliseconds
    zero_based: bool = False  # p counted from 0: p=1 is the second page
    null_items: bool = False  # items: null while total > 0
    page_cap: int = 0  # pages silently capped at this many logs, page_size not echoed

    def bounds(self, start: int, end: int) -> tuple[int, int]:
        return (1, 2**62) if self.ignore_filters else (start, end)

    def offset(self, page: int, size: int) -> int:
        return (page if self.zero_based else page - 1) * size

    def size(self, size: int) -> int:
        return min(size, self.page_cap) if self.page_cap else size

    def shape(self, data: dict[str, Any], secret: str) -> dict[str, Any]:
        """The paged `data` as the hostile gateway would send it."""
        data = dict(data)
        total = int(data["total"])
        if self.lie_total and total > PAGE:
            data["total"] = total - PAGE
        if self.page_cap:
            data.pop("page_size", None)
        items = data["items"]
        if self.echo_secret or self.milliseconds:
            items = [self.item(dict(i), secret) for i in items]
        data["items"] = None if self.null_items and total > 0 else items
        return data

    def item(self, item: dict[str, Any], secret: str) -> dict[str, Any]:
        if self.echo_secret:
            item["token_name"] = secret
            item["content"] = f"token {secret} used"
        if self.milliseconds:
            item["created_at"] = int(item["created_at"]) * 1000
        return item

    def encode(self, body: bytes) -> tuple[bytes, dict[str, str]]:
        if self.gzip:
            return gzip.compress(body), {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        return body, {}

    def write(self, wfile: Any, body: bytes) -> None:
        if self.drip_seconds <= 0:
            wfile.write(body)
            return
        for i in range(len(body)):
            wfile.write(body[i : i + 1])
            wfile.flush()
            time.sleep(self.drip_seconds)
