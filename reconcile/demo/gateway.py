"""The built-in gateway: what tests and the demo import, and `python -m reconcile.demo.gateway`.

`python -m reconcile.demo.gateway --data FILE.jsonl` serves logs for manual runs of the fetcher.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from reconcile.demo.faults import Faults
from reconcile.demo.hostile import Hostile
from reconcile.demo.server import ENDPOINT, GatewayServer
from reconcile.demo.store import LogStore
from reconcile.demo.users import User
from reconcile.errors import InputError

__all__ = ["ENDPOINT", "Faults", "GatewayServer", "Hostile", "LogStore", "User"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reconcile.demo.gateway", description=__doc__)
    ap.add_argument("--data", required=True, help='JSON lines: {"key": "sk-...", ...log item}')
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to each request")
    ap.add_argument("--status-429-every", type=int, default=0)
    ap.add_argument("--retry-after", type=float, default=1.0)
    ap.add_argument("--status-500-every", type=int, default=0)
    ap.add_argument("--timeout-every", type=int, default=0)
    ap.add_argument("--hang-seconds", type=float, default=5.0)
    ap.add_argument("--truncate-every", type=int, default=0)
    ap.add_argument("--fail-every", type=int, default=0)
    ap.add_argument("--insert-every", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--legacy-list", action="store_true", help="/api/log/token unpaged")
    ap.add_argument("--recent-limit", type=int, default=0, help="unpaged: newest N only")
    ap.add_argument("--id-style", choices=["real", "row_number", "mod1024"], default="real")
    ap.add_argument("--gzip", action="store_true", help="compress every answer")
    args = ap.parse_args(argv)
    try:
        store = LogStore.from_jsonl(args.data)
    except (InputError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    faults = Faults(
        latency=args.latency,
        status_429_every=args.status_429_every,
        retry_after=args.retry_after,
        status_500_every=args.status_500_every,
        timeout_every=args.timeout_every,
        hang_seconds=args.hang_seconds,
        truncate_every=args.truncate_every,
        fail_every=args.fail_every,
        insert_every=args.insert_every,
        seed=args.seed,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with GatewayServer(
        store,
        faults,
        host=args.host,
        port=args.port,
        legacy_list=args.legacy_list,
        recent_limit=args.recent_limit,
        id_style=args.id_style,
        hostile=Hostile(gzip=args.gzip),
    ) as server:
        print(f"serving {len(store)} logs of {len(store.keys())} keys on {server.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
