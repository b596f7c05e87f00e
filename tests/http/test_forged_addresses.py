"""Forged client addresses (issue 12): with the default settings a local process that sends a new
``X-Forwarded-For`` with every login still meets the per-address login limit, because no proxy is
trusted by default (``[http] trusted_proxies`` is empty)."""

from __future__ import annotations

from tests.http.protection_app import client
from ubot.clocks import FakeClock


def test_a_new_forwarded_for_on_every_login_from_loopback_still_meets_the_login_limit() -> None:
    app = client(FakeClock())
    answers = [
        app.simulate_post(
            "/v1/sessions", json={}, remote_addr=peer, headers={"X-Forwarded-For": f"203.0.113.{n}"}
        ).status_code
        for n, peer in enumerate(["127.0.0.1", "::1"] * 11)
    ]
    # 127.0.0.1 and ::1 are two clients of their own (each its burst of 10); the header changes nothing
    assert answers == [201] * 20 + [429, 429]
