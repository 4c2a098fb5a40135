"""Pricing through the command line: unchecked months fail, the gateway's price list as the
contract (`rules pull`, `rules diff`), and rules that would overflow are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import run_cli
from pricing_helpers import GPT4O, at, log, other, serving, write_jsonl

from reconcile.demo import run as demo

KEY = "sk-pricingCliTest000000000000000000000000000000000"
UTC_OCT = "2026-10"  # a month that has ended


def _run(url: str, rules: Path, out: Path, *extra: str) -> Any:
    return run_cli(
        "run", "--period", UTC_OCT, "--rules", rules, "--out", out, "--quiet", *extra,
        env={"RECONCILE_BASE_URL": url, "RECONCILE_API_KEYS": KEY},
    )  # fmt: skip


def _logs(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    fixed = [{**r, "id": 1000 + i, "created_at": at("2026-10-05 10:00:00") + i} for i, r in
             enumerate(rows)]  # fmt: skip
    return write_jsonl(tmp_path / "logs.jsonl", fixed, KEY)


def test_a_month_whose_other_fields_are_all_broken_does_not_pass(tmp_path: Path) -> None:
    # Regression: every `other` invalid JSON made every log not_repriceable at "info", and the
    # run passed with exit 0 while an overcharge (the third log) hid among them.
    rules = tmp_path / "rules.toml"
    rules.write_text(GPT4O, encoding="utf-8")
    broken = '{"model_ratio": 1.25, "cache_tokens": '
    rows = [
        log(prompt_tokens=1000, completion_tokens=200, quota=2250, other=broken),
        log(prompt_tokens=1000, completion_tokens=200, quota=2250, other=broken),
        log(prompt_tokens=1000, completion_tokens=200, quota=9000, other=broken),
    ]
    with serving(_logs(tmp_path, rows)) as url:
        ran = _run(url, rules, tmp_path / "out")
    assert ran.code == 1, ran.stdout + ran.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text("utf-8"))
    assert summary["status"] == "fail"
    assert summary["discrepancies"]["not_repriceable"]["count"] == 3
    assert "3 of 3 consume log(s)" in ran.stdout


def test_a_log_that_cannot_be_checked_is_a_warning_not_a_silent_pass(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(GPT4O, encoding="utf-8")
    surcharge = other(model_ratio=1.25, completion_ratio=4, web_search_call_count=2)
    rows = [log(prompt_tokens=1000, completion_tokens=200, quota=12250, other=surcharge)]
    with serving(_logs(tmp_path, rows)) as url:
        default = _run(url, rules, tmp_path / "a")
        strict = _run(url, rules, tmp_path / "b", "--fail-on", "warning")
    assert default.code == 0, default.stdout
    assert "1 of 1 consume log(s) (12,250 quota) could not be re-priced" in default.stdout
    assert "tool_price_missing 1" in default.stdout
    assert strict.code == 1


def _honest_month() -> list[dict[str, Any]]:
    """Logs charged exactly as the demo gateway's published prices say."""
    o = other(model_ratio=1.25, completion_ratio=4, group_ratio=1, model_price=-1)
    return [
        log(prompt_tokens=1000, completion_tokens=200, quota=2250, other=o),
        log(model_name="deepseek-chat", prompt_tokens=2000, completion_tokens=100, quota=324,
            other=other(model_ratio=0.135, completion_ratio=4, group_ratio=1)),
        log(model_name="dall-e-3", prompt_tokens=1, quota=20000,
            other=other(model_price=0.04, group_ratio=1)),
        log(group="vip", prompt_tokens=1000, completion_tokens=200, quota=1800,
            other=other(model_ratio=1.25, completion_ratio=4, group_ratio=0.8)),
    ]  # fmt: skip


def test_pull_then_run_passes_an_honest_month_and_fails_an_overcharge(tmp_path: Path) -> None:
    honest = _honest_month()
    cheated = [*honest, log(prompt_tokens=1000, completion_tokens=200, quota=2700,
                            other=other(model_ratio=1.5, completion_ratio=4))]  # fmt: skip
    pulled = tmp_path / "pulled.toml"
    with serving(_logs(tmp_path, honest)) as url:
        ran = run_cli("rules", "pull", "--base-url", url, "--out", pulled,
                      "--effective-from", "2026-10-01")  # fmt: skip
        assert ran.code == 0, ran.stderr
        text = pulled.read_text("utf-8")
        assert text.startswith(f"# Pulled by `reconcile rules pull` from {url}/api/pricing at ")
        assert "effective_from = 2026-10-01" in text
        assert run_cli("rules", "check", pulled).code == 0
        good = _run(url, pulled, tmp_path / "good")
    assert good.code == 0, good.stdout + good.stderr
    with serving(_logs(tmp_path, cheated)) as url:
        bad = _run(url, pulled, tmp_path / "bad")
    assert bad.code == 1, bad.stdout
    summary = json.loads((tmp_path / "bad" / "summary.json").read_text("utf-8"))
    assert summary["discrepancies"]["pricing_mismatch"] == {"count": 1, "quota": 450}


def test_pull_never_overwrites_a_file_it_did_not_write(tmp_path: Path) -> None:
    mine = tmp_path / "contract.toml"
    mine.write_text(GPT4O, encoding="utf-8")
    with serving(_logs(tmp_path, _honest_month())) as url:
        ran = run_cli("rules", "pull", "--base-url", url, "--out", mine)
        again = tmp_path / "pulled.toml"
        first = run_cli("rules", "pull", "--base-url", url, "--out", again)
        second = run_cli("rules", "pull", "--base-url", url, "--out", again)
    assert ran.code == 2
    assert "was not written by `reconcile rules pull`" in ran.stderr
    assert mine.read_text("utf-8") == GPT4O
    assert (first.code, second.code) == (0, 0)  # its own file may be refreshed


def test_pull_from_a_gateway_that_is_not_there_is_exit_3(tmp_path: Path) -> None:
    ran = run_cli("rules", "pull", "--base-url", "http://127.0.0.1:9", "--out", tmp_path / "x")
    assert ran.code == 3
    assert "Traceback" not in ran.stderr
    assert not (tmp_path / "x").exists()


def test_rules_diff_lists_what_changed(tmp_path: Path) -> None:
    new = tmp_path / "new.toml"
    text = demo.FILES.rules.read_text("utf-8")
    new.write_text(
        text.replace("model_ratio = 1.25", "model_ratio = 1.5").replace("vip = 0.8", "vip = 0.9")
        + '\n[[model]]\nmatch = "gpt-5"\nmodel_ratio = 0.625\ncompletion_ratio = 8\n',
        encoding="utf-8",
    )
    ran = run_cli("rules", "diff", demo.FILES.rules, new)
    assert ran.code == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert "~ model gpt-4o: model_ratio 1.25 -> 1.5 (+20%)" in lines
    assert "~ group vip: ratio 0.8 -> 0.9 (+12.5%)" in lines
    assert any(line.startswith("+ model gpt-5: model_ratio 0.625") for line in lines)
    assert lines[-1] == "3 change(s)"


def test_a_per_call_price_that_overflows_int64_is_refused_by_rules_check(tmp_path: Path) -> None:
    # Regression: model_price 1e6 x quota_per_unit 1e12 x group 10 passed `rules check`, then
    # the run crashed converting the per-call quota to int64.
    path = tmp_path / "big.toml"
    path.write_text(
        "quota_per_unit = 1000000000000\n[groups]\nbig = 10\n"
        '[[model]]\nmatch = "m"\nmodel_price = 1000000\n',
        encoding="utf-8",
    )
    ran = run_cli("rules", "check", path)
    assert ran.code == 2
    assert f"{path}:6: model_price: one call would cost" in ran.stderr
    assert "beyond the 64-bit quota" in ran.stderr


def test_pull_never_echoes_a_url_that_may_hold_a_secret(tmp_path: Path) -> None:
    for url in ("http://user:s3cret-pw@[::1", "ftp://user:s3cret-pw@host/x?key=sk-s3cret"):
        ran = run_cli("rules", "pull", "--base-url", url, "--out", tmp_path / "x.toml")
        assert ran.code == 2, ran.stderr
        assert "s3cret" not in ran.stdout + ran.stderr
        assert "--base-url" in ran.stderr


def test_pull_reads_a_gateway_served_under_a_path_as_the_log_sources_do(tmp_path: Path) -> None:
    # Regression: `rules pull` kept only the URL's origin, so a gateway behind a path
    # (https://host/newapi, which the log sources read) answered 404 and the pull failed.
    import http.server
    import threading

    from reconcile.demo.pricing_api import demo_payload

    body = json.dumps(demo_payload()).encode()
    asked: list[str] = []

    class Prefixed(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            found = self.path == "/newapi/api/pricing"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body if found else b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Prefixed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/newapi/"
    try:
        ran = run_cli("rules", "pull", "--base-url", url, "--out", tmp_path / "p.toml")
        query = run_cli("rules", "pull", "--base-url", url + "?key=sk-s3cret", "--out",
                        tmp_path / "q.toml")  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert ran.code == 0, ran.stderr
    assert asked == ["/newapi/api/pricing"]
    header = (tmp_path / "p.toml").read_text("utf-8").splitlines()[0]
    assert header.startswith(f"# Pulled by `reconcile rules pull` from {url[:-8]}/api/pricing")
    assert query.code == 2
    assert "--base-url" in query.stderr
    assert "s3cret" not in query.stderr
