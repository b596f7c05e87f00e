"""protection_middleware: what the settings turn on, in the order create_app needs."""

from __future__ import annotations

import pytest

from tests.http.protection_app import settings
from ubot.clocks import FakeClock
from ubot.http.accesslog import AccessLog
from ubot.http.clientaddr import ClientAddress
from ubot.http.cors import CORS
from ubot.http.headers import SecurityHeaders
from ubot.http.limits import Budget
from ubot.http.protection import protection_middleware
from ubot.http.ratelimit import ClientRateLimit, UserRateLimit
from ubot.http.requestid import RequestId


def build(**environ: str):
    loaded = settings(**environ)
    return protection_middleware(loaded.http, loaded.limits, clock=FakeClock())


def kinds(components) -> list[type]:
    return [type(component) for component in components]


def test_the_defaults():
    protection = build()
    assert kinds(protection.before_auth) == [
        RequestId,
        ClientAddress,
        AccessLog,
        SecurityHeaders,
        ClientRateLimit,
    ]
    assert kinds(protection.after_auth) == [UserRateLimit]
    client_limit, user_limit = protection.before_auth[-1], protection.after_auth[0]
    assert client_limit.clients.budget == Budget(20, 40)
    assert [b.budget for b in client_limit.logins.values()] == [Budget(5 / 60, 10)] * 2
    assert user_limit.users.budget == Budget(10, 20)
    assert protection.before_auth[1].trusted == ()  # no proxy trusted by default


def test_cors_comes_before_authentication_only_when_origins_are_set():
    protection = build(UBOT_HTTP_CORS_ORIGINS="https://app.example.com")
    assert kinds(protection.before_auth) == [
        RequestId,
        ClientAddress,
        AccessLog,
        CORS,
        SecurityHeaders,
        ClientRateLimit,
    ]
    assert protection.before_auth[3].allow_origins == frozenset({"https://app.example.com"})


def test_limits_off():
    protection = build(UBOT_LIMITS_ENABLED="false")
    assert ClientRateLimit not in kinds(protection.before_auth)
    assert protection.after_auth == []


def test_hsts_from_the_settings():
    (headers,) = [c for c in build(UBOT_HTTP_HSTS="yes").before_auth if isinstance(c, SecurityHeaders)]
    assert ("Strict-Transport-Security", "max-age=31536000") in headers.headers


def test_without_a_clock_the_real_clocks_are_used():
    loaded = settings()
    protection = protection_middleware(loaded.http, loaded.limits)
    assert protection.before_auth[-1].clients.take("x") == pytest.approx(0.0)
