"""Rate limits: the token buckets (stepped on a FakeClock), the client address, and the 429s of the
middleware wired as create_app wires it."""

from __future__ import annotations

import pytest

from tests.http.protection_app import AUTH_7, AUTH_8, client
from ubot.clocks import FakeClock
from ubot.http.clientaddr import ClientAddress, parse_ip
from ubot.http.limits import Budget, TokenBuckets, retry_after
from ubot.http.ratelimit import client_key

# -- the buckets ----------------------------------------------------------------------------------


def buckets(rate: float = 2.0, burst: int = 3, max_keys: int = 100) -> tuple[TokenBuckets, FakeClock]:
    clock = FakeClock()
    return TokenBuckets(Budget(rate, burst), now=clock.now, max_keys=max_keys), clock


def test_a_new_key_gets_the_whole_burst_then_waits_for_the_rate():
    limiter, clock = buckets(rate=2.0, burst=3)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    clock.advance(0.25)
    assert limiter.take("a") == pytest.approx(0.25)  # a refusal spends nothing
    clock.advance(0.25)
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(0.5)


def test_keys_have_their_own_buckets():
    limiter, _ = buckets(rate=1.0, burst=1)
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0.0


def test_a_bucket_never_holds_more_than_the_burst():
    limiter, clock = buckets(rate=10.0, burst=2)
    limiter.take("a")
    clock.advance(3600)
    assert [limiter.take("a") == 0.0 for _ in range(3)] == [True, True, False]


def test_waiting_exactly_retry_after_is_enough_despite_floating_point():
    limiter, clock = buckets(rate=5 / 60, burst=10)
    for _ in range(10):
        assert limiter.take("a") == 0.0
    wait = limiter.take("a")
    assert retry_after(wait) == 12
    clock.advance(retry_after(wait))
    assert limiter.take("a") == 0.0
    clock.advance(11)
    assert limiter.take("a") > 0


def test_a_clock_stepped_back_adds_no_tokens():
    limiter, clock = buckets(rate=1.0, burst=1)
    limiter.take("a")
    clock.advance(-100)
    assert limiter.take("a") > 0
    clock.advance(1)
    assert limiter.take("a") == 0.0


def test_full_buckets_are_forgotten_when_new_keys_arrive():
    limiter, clock = buckets(rate=2.0, burst=4)  # full again after 2 s idle
    for key in range(10):
        limiter.take(key)
    assert len(limiter) == 10
    clock.advance(1.9)
    limiter.take("late")
    assert len(limiter) == 11  # not idle long enough: kept
    clock.advance(0.1)
    limiter.take("later")
    assert len(limiter) == 2  # keys 0..9 were full again: dropped, "late" is not yet


def test_the_number_of_keys_is_capped_dropping_the_least_recently_used():
    limiter, clock = buckets(rate=1.0, burst=1, max_keys=3)
    for key in "abc":
        limiter.take(key)
    limiter.take("a")  # refused, but "a" is now the most recently used
    limiter.take("d")
    assert len(limiter) == 3
    assert limiter.take("b") == 0.0  # "b" was dropped: starts afresh
    assert limiter.take("a") > 0  # "a" was kept, still empty


@pytest.mark.parametrize(
    ("wait", "header"), [(0.001, 1), (0.5, 1), (1.0, 1), (1.2, 2), (12.000000000000002, 12)]
)
def test_retry_after_is_whole_seconds_at_least_one(wait, header):
    assert retry_after(wait) == header


def test_a_budget_needs_a_rate_and_a_burst():
    with pytest.raises(ValueError):
        Budget(0, 1)
    with pytest.raises(ValueError):
        Budget(1, 0)


# -- the client address ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.9", "203.0.113.9"),
        (" 203.0.113.9:4711 ", "203.0.113.9"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("unknown", None),
        ("", None),
    ],
)
def test_parse_ip(text, expected):
    parsed = parse_ip(text)
    assert (None if parsed is None else str(parsed)) == expected


def test_forwarded_for_is_ignored_without_trusted_proxies():
    assert ClientAddress(()).resolve("10.0.0.5", "203.0.113.9") == "10.0.0.5"


def test_forwarded_for_is_ignored_from_an_untrusted_peer():
    assert ClientAddress(["10.0.0.0/8"]).resolve("198.51.100.1", "203.0.113.9") == "198.51.100.1"


def test_forwarded_for_is_read_right_to_left_past_trusted_proxies():
    resolver = ClientAddress(["10.0.0.0/8", "::1"])
    # the client forged the first entry; our two proxies appended the rest
    assert resolver.resolve("10.0.0.5", "1.1.1.1, 203.0.113.9, 10.0.0.7") == "203.0.113.9"
    assert resolver.resolve("::1", "203.0.113.9") == "203.0.113.9"
    assert resolver.resolve("10.0.0.5", "10.0.0.6, 10.0.0.7") == "10.0.0.6"  # all ours: the leftmost
    assert resolver.resolve("10.0.0.5", "203.0.113.9, garbage") == "10.0.0.5"  # malformed: stop


def test_ipv6_clients_are_counted_per_64():
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("203.0.113.9") == "203.0.113.9"


# -- the middleware -------------------------------------------------------------------------------

LOW = {"UBOT_LIMITS_PER_CLIENT_RATE": "1", "UBOT_LIMITS_PER_CLIENT_BURST": "3"}


def test_over_the_client_budget_is_a_429_with_retry_after_in_the_uniform_shape():
    clock = FakeClock()
    app = client(clock, **LOW)
    for _ in range(3):
        assert app.simulate_get("/v1/global").status_code == 200
    refused = app.simulate_get("/v1/global")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert set(refused.json) == {"title", "description"}
    assert refused.json["title"] == "Too many requests"
    assert "from your address" in refused.json["description"]
    assert refused.headers["X-Content-Type-Options"] == "nosniff"  # the other middleware still ran
    assert refused.headers["X-Request-ID"]
    clock.advance(1)
    assert app.simulate_get("/v1/global").status_code == 200


def test_addresses_have_separate_budgets():
    app = client(**LOW)
    for _ in range(3):
        app.simulate_get("/v1/global", remote_addr="198.51.100.1")
    assert app.simulate_get("/v1/global", remote_addr="198.51.100.1").status_code == 429
    assert app.simulate_get("/v1/global", remote_addr="198.51.100.2").status_code == 200


def test_clients_behind_a_trusted_proxy_have_separate_budgets():
    app = client(**LOW, UBOT_HTTP_TRUSTED_PROXIES="10.0.0.0/8")
    via_proxy = {"remote_addr": "10.0.0.5"}
    for _ in range(3):
        app.simulate_get("/v1/global", headers={"X-Forwarded-For": "203.0.113.1"}, **via_proxy)
    refused = app.simulate_get("/v1/global", headers={"X-Forwarded-For": "203.0.113.1"}, **via_proxy)
    assert refused.status_code == 429
    ok = app.simulate_get("/v1/global", headers={"X-Forwarded-For": "203.0.113.2"}, **via_proxy)
    assert ok.status_code == 200


def test_by_default_a_local_process_cannot_forge_its_address():
    app = client(**LOW)  # the default settings
    local = {"remote_addr": "127.0.0.1"}
    for n in range(3):
        app.simulate_get("/v1/global", headers={"X-Forwarded-For": f"203.0.113.{n}"}, **local)
    refused = app.simulate_get("/v1/global", headers={"X-Forwarded-For": "203.0.113.9"}, **local)
    assert refused.status_code == 429
    assert (
        app.simulate_get("/v1/global", remote_addr="::1", headers={"X-Forwarded-For": "1.1.1.1"}).status_code
        == 200
    )


def test_a_forged_forwarded_for_does_not_escape_the_limit():
    app = client(**LOW, UBOT_HTTP_TRUSTED_PROXIES="")
    for n in range(3):
        app.simulate_get("/v1/global", remote_addr="198.51.100.1", headers={"X-Forwarded-For": f"1.1.1.{n}"})
    refused = app.simulate_get(
        "/v1/global", remote_addr="198.51.100.1", headers={"X-Forwarded-For": "1.1.1.9"}
    )
    assert refused.status_code == 429


@pytest.mark.parametrize("path", ["/health", "/openapi.json", "/ui/0123abcd/app.js"])
def test_health_the_document_and_the_dashboards_files_are_not_limited(path):
    app = client(**LOW)
    for _ in range(3):
        app.simulate_get("/v1/global")
    assert app.simulate_get("/v1/global").status_code == 429
    assert all(app.simulate_get(path).status_code == 200 for _ in range(20))


@pytest.mark.parametrize(("path", "what"), [("/v1/sessions", "to log in"), ("/v1/users", "to sign up")])
def test_login_and_sign_up_have_a_stricter_budget_per_address(path, what):
    clock = FakeClock()
    app = client(clock, UBOT_LIMITS_LOGIN_PER_MINUTE="2", UBOT_LIMITS_LOGIN_BURST="2")
    assert [app.simulate_post(path, json={}).status_code for _ in range(2)] == [201, 201]
    refused = app.simulate_post(path, json={})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "30"
    assert what in refused.json["description"]
    assert "2 a minute" in refused.json["description"]
    assert app.simulate_post(path, json={}, remote_addr="198.51.100.7").status_code == 201
    assert app.simulate_get("/v1/global").status_code == 200  # other routes are not affected
    clock.advance(30)
    assert app.simulate_post(path, json={}).status_code == 201


def test_sign_ups_do_not_spend_the_login_budget():
    app = client(UBOT_LIMITS_LOGIN_PER_MINUTE="1", UBOT_LIMITS_LOGIN_BURST="2")
    assert [app.simulate_post("/v1/users", json={}).status_code for _ in range(3)] == [201, 201, 429]
    assert [app.simulate_post("/v1/sessions", json={}).status_code for _ in range(3)] == [201, 201, 429]


def test_the_default_login_budget_is_ten_then_one_every_twelve_seconds():
    clock = FakeClock()
    app = client(clock)
    assert all(app.simulate_post("/v1/sessions", json={}).status_code == 201 for _ in range(10))
    refused = app.simulate_post("/v1/sessions", json={})
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "12"
    clock.advance(12)
    assert app.simulate_post("/v1/sessions", json={}).status_code == 201


def test_a_user_has_a_budget_of_its_own_across_addresses():
    clock = FakeClock()
    app = client(clock, UBOT_LIMITS_PER_USER_RATE="1", UBOT_LIMITS_PER_USER_BURST="2")
    for n in range(2):
        result = app.simulate_get("/v1/me/settings", headers=AUTH_7, remote_addr=f"198.51.100.{n}")
        assert result.status_code == 200
    refused = app.simulate_get("/v1/me/settings", headers=AUTH_7, remote_addr="198.51.100.9")
    assert refused.status_code == 429
    assert "for your account" in refused.json["description"]
    assert refused.headers["Retry-After"] == "1"
    assert app.simulate_get("/v1/me/settings", headers=AUTH_8, remote_addr="198.51.100.9").status_code == 200
    assert app.simulate_get("/v1/global", remote_addr="198.51.100.9").status_code == 200  # anonymous
    clock.advance(1)
    assert app.simulate_get("/v1/me/settings", headers=AUTH_7).status_code == 200


def test_the_user_limit_counts_only_authenticated_requests():
    app = client(UBOT_LIMITS_PER_USER_RATE="1", UBOT_LIMITS_PER_USER_BURST="1")
    assert app.simulate_get("/v1/me/settings").status_code == 401  # no user: nothing to count
    assert app.simulate_get("/v1/me/settings", headers=AUTH_7).status_code == 200
    assert app.simulate_get("/v1/me/settings", headers=AUTH_7).status_code == 429


def test_the_client_limit_refuses_before_the_body_checks():
    app = client(**LOW)
    for _ in range(3):
        app.simulate_get("/v1/global")
    refused = app.simulate_put("/v1/me/settings", body=b"x" * 4096, headers={"Content-Type": "text/plain"})
    assert refused.status_code == 429  # not 413, 415 or 401: nothing else was looked at


def test_limits_can_be_switched_off():
    app = client(UBOT_LIMITS_ENABLED="false", **LOW)
    assert all(app.simulate_get("/v1/global").status_code == 200 for _ in range(50))
    assert all(app.simulate_post("/v1/sessions", json={}).status_code == 201 for _ in range(20))
