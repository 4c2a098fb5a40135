"""`reconcile rules pull`: the gateway's own published price list as a rules file.

new-api publishes its prices at `GET /api/pricing` (controller/pricing.go, GetPricing):
per model the quota type, model ratio or price, completion / cache / cache-write / image /
audio ratios and billing mode, plus the group ratios. Pulled at the start of a month and
used as the contract, it lets a run check that the gateway charged what it published.

The file written says where and when it came from (origin only: never a path, query or
credential), carries `effective_from`, and is validated with the rules loader before it is
written (atomically). An existing file is replaced only if this command wrote it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import httpx

from reconcile.core.atomic import atomic_write_text
from reconcile.errors import GatewayError, InputError
from reconcile.pricing.rules import Rules, glob_problem, parse_rules
from reconcile.sources.engine import endpoint

HEADER: Final = "# Pulled by `reconcile rules pull` from "
ENDPOINT: Final = "/api/pricing"
#: /api/pricing key -> rules key, for ratio-priced models (quota_type 0).
RATIO_KEYS: Final = (
    ("model_ratio", "model_ratio"),
    ("completion_ratio", "completion_ratio"),
    ("cache_ratio", "cache_ratio"),
    ("create_cache_ratio", "cache_creation_ratio"),
    ("image_ratio", "image_ratio"),
    ("audio_ratio", "audio_ratio"),
    ("audio_completion_ratio", "audio_completion_ratio"),
)
#: Ratios new-api reports as 0 when the model does not set them: not written then.
_ZERO_IS_UNSET: Final = frozenset(
    {"cache_ratio", "create_cache_ratio", "image_ratio", "audio_ratio", "audio_completion_ratio"}
)


@dataclass(frozen=True)
class Pulled:
    text: str  # the rules file
    rules: Rules
    models: int
    skipped: list[str]  # models that could not be written, with why


def fetch_pricing(
    base_url: str, name: str = "--base-url", timeout: float = 30.0
) -> tuple[dict[str, Any], str]:
    """(GET {base_url}/api/pricing, the gateway's origin for the file's header).

    The URL is checked as the log sources check it (`sources.engine.endpoint`: InputError,
    exit 2, naming `name`); GatewayError (exit 3) when the list cannot be read. Messages name
    the origin only: the URL's path could hold a secret."""
    url, base = endpoint(base_url, ENDPOINT, name)
    where = base + ENDPOINT
    try:
        resp = httpx.get(url, timeout=timeout, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise GatewayError(f"{where}: cannot read the price list ({type(exc).__name__})") from None
    if resp.status_code != 200:
        raise GatewayError(f"{where}: HTTP {resp.status_code}")
    try:
        body = resp.json()
    except ValueError:
        raise GatewayError(f"{where}: the answer is not JSON") from None
    if not isinstance(body, dict) or body.get("success") is not True:
        message = body.get("message") if isinstance(body, dict) else None
        raise GatewayError(f"{where}: the gateway refused: {str(message or 'no data')[:120]}")
    if not isinstance(body.get("data"), list):
        raise GatewayError(f"{where}: `data` is not a list of models")
    return body, base


def rules_text(
    payload: dict[str, Any], source: str, effective_from: date, now: datetime | None = None
) -> Pulled:
    """A rules file from an /api/pricing answer, validated."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        f"{HEADER}{source}{ENDPOINT} at {stamp}",
        "# The gateway's published prices, as its contract. quota_per_unit is not published:",
        "# new-api's default is assumed; change it if the gateway's operator changed it.",
        "",
        "quota_per_unit = 500000",
        "",
    ]
    groups = payload.get("group_ratio")
    if isinstance(groups, dict) and groups:
        lines.append("[groups]")
        for name, ratio in sorted(groups.items()):
            value = _number(ratio)
            if value is not None and value >= 0:
                lines.append(f"{json.dumps(str(name), ensure_ascii=False)} = {_fmt(ratio)}")
        lines.append("")
    skipped: list[str] = []
    count = 0
    seen: set[str] = set()
    for item in payload["data"]:
        block, why = _model(item, effective_from)
        name = str(item.get("model_name", "")) if isinstance(item, dict) else ""
        if why or name in seen:
            skipped.append(f"{name or '?'}: {why or 'listed twice'}")
            continue
        seen.add(name)
        lines += block
        count += 1
    text = "\n".join(lines) + "\n"
    rules = parse_rules(text, "<pulled price list>")
    return Pulled(text, rules, count, skipped)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _fmt(v: Any) -> str:
    """A float as the shortest decimal that reads back to it (what Go configured)."""
    x = _number(v)
    assert x is not None
    return repr(x) if not x.is_integer() else str(int(x))


def _model(item: Any, effective_from: date) -> tuple[list[str], str]:
    if not isinstance(item, dict):
        return [], "not an object"
    name = item.get("model_name")
    if not isinstance(name, str) or not name:
        return [], "no model_name"
    problem = glob_problem(name)
    if problem:
        return [], f"the name {problem}"
    out = ["[[model]]", f"match = {json.dumps(name, ensure_ascii=False)}"]
    if item.get("quota_type") == 1:
        price = _number(item.get("model_price"))
        if price is None or price < 0:
            return [], "per-call without a model_price"
        out.append(f"model_price = {_fmt(price)}")
    else:
        for theirs, ours in RATIO_KEYS:
            v = _number(item.get(theirs))
            if v is None or v < 0 or (v == 0 and theirs in _ZERO_IS_UNSET):
                continue
            out.append(f"{ours} = {_fmt(v)}")
        if not any(line.startswith("model_ratio") for line in out):
            return [], "ratio-priced without a model_ratio"
    mode = item.get("billing_mode")
    if isinstance(mode, str) and mode:
        out.append(
            f"# billing_mode {json.dumps(mode)}: tiers are not published; add [[model.tiers]]"
        )
    out.append(f"effective_from = {effective_from.isoformat()}")
    out.append("")
    return out, ""


def write_pulled(path: Path, text: str) -> None:
    """Write the file atomically; refuse to replace a file this command did not write."""
    if path.exists():
        if path.is_dir():
            raise InputError("is a directory", file=path, field="--out")
        try:
            first = path.read_text(encoding="utf-8").split("\n", 1)[0]
        except (OSError, UnicodeDecodeError):
            first = ""
        if not first.startswith(HEADER):
            raise InputError(
                "exists and was not written by `reconcile rules pull`; choose another --out",
                file=path,
                field="--out",
            )
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror}", file=path, field="--out") from None
