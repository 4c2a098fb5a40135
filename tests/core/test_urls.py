"""A gateway URL keeps only its origin: no user info, path or query, IPv6 brackets kept."""

from __future__ import annotations

import pytest

from reconcile.core.urls import origin


def test_origin_drops_what_may_hold_a_secret() -> None:
    assert origin("https://user:sk-abc@gw.example.com:8443/v1?key=sk-abc#x") == (
        "https://gw.example.com:8443"
    )
    assert origin("http://[::1]:3000/api") == "http://[::1]:3000"
    assert origin("http://127.0.0.1") == "http://127.0.0.1"
    assert origin("gw.example.com/path") == ""
    assert origin("") == ""


def test_a_malformed_port_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="out of range"):
        origin("http://127.0.0.1:99999")
