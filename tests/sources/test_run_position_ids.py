"""A whole run from a user's access token on a server that numbers ids by position.

Current new-api versions show a user `id` = the row's place in the answer, so ids repeat
across windows. The run must still count, price and match every log once, through the
command line, and a rerun from its snapshot must give the same verdict.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli
from match_helpers import LEDGERS

from reconcile.demo import run as demo
from reconcile.demo.gateway import GatewayServer, LogStore
from reconcile.demo.users import User
from reconcile.sources.snapshot import read_snapshot

TOKEN = "accesstoken-user7-0123456789abcdef"
ARGS = ("--period", "2026-10", "--tz", "Asia/Shanghai", "--rules", str(demo.FILES.rules))
NO_IDS = (
    "--ledger",
    str(LEDGERS / "demo-no-ids.csv"),
    "--ledger-profile",
    str(LEDGERS / "demo-no-ids.profile.toml"),
)


def _summary(out: Path) -> dict[str, object]:
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {k: summary[k] for k in ("logs", "expected_quota", "ledger", "discrepancies")}


def test_position_ids_count_price_and_match_every_log_once(tmp_path: Path) -> None:
    keys = demo.demo_keys()
    with GatewayServer(LogStore.from_jsonl(demo.FILES.logs)) as srv:
        env = {"RECONCILE_BASE_URL": srv.url, "RECONCILE_API_KEYS": ",".join(keys)}
        by_key = run_cli("run", *ARGS, *NO_IDS, "--out", tmp_path / "key", env=env)
    assert by_key.code == 1, by_key.stderr
    users = {TOKEN: User(7, keys, id_style="row_number")}
    with GatewayServer(LogStore.from_jsonl(demo.FILES.logs), users=users) as srv:
        env = {
            "RECONCILE_BASE_URL": srv.url,
            "RECONCILE_ACCESS_TOKEN": TOKEN,
            "RECONCILE_USER_ID": "7",
        }
        by_user = run_cli("run", *ARGS, *NO_IDS, "--out", tmp_path / "user", env=env)
    assert by_user.code == 1, by_user.stderr
    assert "Traceback" not in by_user.stderr
    # the same month, the same verdict: every log once, the demo's pricing findings only
    assert _summary(tmp_path / "user") == _summary(tmp_path / "key")

    stored = read_snapshot(tmp_path / "user").logs
    assert stored["id"].duplicated().any()  # the gateway's ids, as shown: not an identity
    assert not stored["row_key"].duplicated().any()
    manifest = json.loads((tmp_path / "user" / "snapshot" / "manifest.json").read_text())
    assert manifest["id_scheme"] == "position"

    again = run_cli(
        "run", *ARGS, *NO_IDS, "--from-snapshot", tmp_path / "user", "--out", tmp_path / "re"
    )
    assert again.code == 1, again.stderr
    assert _summary(tmp_path / "re") == _summary(tmp_path / "user")
