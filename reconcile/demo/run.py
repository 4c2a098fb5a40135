"""The demo: a built-in gateway on loopback serving a month of fixture logs with planted faults."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reconcile.demo.server import GatewayServer
from reconcile.demo.store import LogStore

DATA = Path(__file__).resolve().parent / "data"
PERIOD = "2026-10"
TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class DemoFiles:
    logs: Path = DATA / "logs.jsonl"
    ledger: Path = DATA / "ledger.csv"
    rules: Path = DATA / "rules.toml"
    expected: Path = DATA / "expected.json"


FILES = DemoFiles()


def demo_keys(logs: Path = FILES.logs) -> list[str]:
    """The fixture's API keys in order of first appearance (fake keys, for loopback only)."""
    keys: dict[str, None] = {}
    with logs.open(encoding="utf-8") as f:
        for line in f:
            keys.setdefault(json.loads(line)["key"], None)
    return list(keys)


@contextmanager
def demo_gateway(logs: Path = FILES.logs) -> Iterator[tuple[str, list[str]]]:
    """Serve the fixture logs on 127.0.0.1; yield the gateway's URL and its keys."""
    store = LogStore.from_jsonl(logs)
    with GatewayServer(store) as server:
        yield server.url, demo_keys(logs)
