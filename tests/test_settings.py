"""Where settings come from, and the period a finance user asks for."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.core.period import parse_period
from reconcile.errors import InputError
from reconcile.settings import load_settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("RECONCILE_BASE_URL", "RECONCILE_API_KEYS", "RECONCILE_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_env_then_dotenv_then_flags(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / ".env").write_text(
        "RECONCILE_TIMEZONE=Asia/Tokyo\nRECONCILE_BASE_URL=https://from-dotenv.example\n",
        encoding="utf-8",
    )
    assert load_settings().timezone == "Asia/Tokyo"
    monkeypatch.setenv("RECONCILE_TIMEZONE", "Europe/Berlin")
    settings = load_settings()
    assert settings.timezone == "Europe/Berlin"  # the environment beats .env
    assert settings.base_url == "https://from-dotenv.example"
    assert load_settings(timezone="Asia/Shanghai").timezone == "Asia/Shanghai"  # flags win
    assert load_settings(timezone=None).timezone == "Europe/Berlin"  # an absent flag doesn't


def test_several_keys_are_kept_apart_and_never_shown(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = "sk-" + "a" * 40, "sk-" + "b" * 40
    monkeypatch.setenv("RECONCILE_API_KEYS", f" {first}, {second},{first},")
    settings = load_settings()
    keys = settings.keys()
    assert [k.secret.get_secret_value() for k in keys] == [first, second]
    assert keys[0].ref != keys[1].ref
    shown = repr(settings) + str(settings) + repr(keys) + settings.model_dump_json()
    assert first not in shown
    assert second not in shown


def test_bad_setting_names_the_variable(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_CONCURRENCY", "many")
    with pytest.raises(InputError, match="RECONCILE_CONCURRENCY"):
        load_settings()


def test_a_month_is_half_open_in_its_time_zone() -> None:
    p = parse_period("2026-10", None, None, "Asia/Shanghai")
    assert p.start.isoformat() == "2026-10-01T00:00:00+08:00"
    assert p.end.isoformat() == "2026-11-01T00:00:00+08:00"
    assert p.contains(p.start_ts)
    assert not p.contains(p.end_ts)  # a log at exactly the end belongs to November
    assert p.contains(p.end_ts - 1)
    december = parse_period("2026-12", None, None, "UTC")
    assert december.end.isoformat() == "2027-01-01T00:00:00+00:00"


def test_start_and_end_days() -> None:
    p = parse_period(None, "2026-10-01", "2026-10-16", "UTC")
    assert (p.end - p.start).days == 15
    assert p.label == "2026-10-01_2026-10-16"


@pytest.mark.parametrize(
    ("period", "start", "end", "tz", "field"),
    [
        ("2026-13", None, None, "UTC", "--period"),
        ("2026-1", None, None, "UTC", "--period"),
        (None, "2026-10-01", None, "UTC", "--period"),
        (None, "2026-10-05", "2026-10-01", "UTC", "--end"),
        (None, "2026-10-32", "2026-11-01", "UTC", "--start"),
        ("2026-10", "2026-10-01", "2026-11-01", "UTC", "--period"),
        ("2026-10", None, None, "Mars/Olympus", "timezone"),
    ],
)
def test_bad_periods_name_the_flag(
    period: str | None, start: str | None, end: str | None, tz: str, field: str
) -> None:
    with pytest.raises(InputError) as err:
        parse_period(period, start, end, tz)
    assert err.value.field == field
