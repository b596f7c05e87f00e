"""CmcSource: what the pipeline and /health see for each fault, over real sockets to a fake CMC."""

from __future__ import annotations

import logging

import pytest

from tests.fakecmc import KEY, T0_MS, Error, FakeCmc, Html, Raw, Reset, Slow, rate_limited
from ubot.clocks import FakeClock
from ubot.market.cmc_source import CmcSource, CmcStatus
from ubot.market.coinmarketcap import GLOBAL_PATH, KEY_INFO_PATH, LISTINGS_PATH, CmcClient
from ubot.market.recorder import Recorder
from ubot.market.snapshot import parse_listings
from ubot.market.source import FatalSourceError, SourceError
from ubot.timeutil import parse_iso_ms

T0 = T0_MS / 1000


@pytest.fixture
def fake():
    server = FakeCmc().start()
    yield server
    server.stop()


@pytest.fixture
def clock():
    return FakeClock(T0)


def make_source(fake, clock, budget_s=30.0, timeout=10.0, **kwargs) -> CmcSource:
    """``timeout``: short only where a test waits for it (a loaded machine must not make a normal
    answer time out and retry)."""
    client = CmcClient(
        KEY, fake.base_url, timeout=timeout, clock=clock, sleeper=clock.advance, max_attempts=3, backoff_s=1.0
    )
    return CmcSource(client, limit=100, convert="USD", clock=clock, budget_s=budget_s, **kwargs)


@pytest.fixture
def source(fake, clock):
    cmc = make_source(fake, clock)
    yield cmc
    cmc.close()


def now_ms(clock) -> int:
    return round(clock.now() * 1000)


def test_a_tick_returns_cmc_listings_and_global_metrics(fake, clock, source):
    raw = source.fetch(now_ms(clock))
    assert source.name == "cmc" and raw.origin == "cmc"
    snapshot = parse_listings(raw.listings, "USD", raw.global_metrics)
    assert len(snapshot) == 100 and snapshot.dropped == 0
    assert snapshot.global_metrics is not None
    assert [s.path for s in fake.calls()] == [LISTINGS_PATH, GLOBAL_PATH]
    assert source.status() == CmcStatus(
        state="ok",
        reason="",
        resume_at=None,
        credits_today=2,
        credits_month=2,
        credit_limit_monthly=None,
        credits_per_tick=2,  # the listings of 100 coins and the global metrics, as just spent
        rate_limit_minute=None,
        plan_from="unknown",
        global_metrics=True,
        skipped_rate_limited=0,
    )


def test_the_plan_comes_from_key_info_and_usage_continues_from_it(fake, clock, source):
    info = source.load_plan()
    assert info is not None and source.monthly_allowance == 10_000
    source.fetch(now_ms(clock))
    status = source.status()
    assert (status.credit_limit_monthly, status.rate_limit_minute, status.plan_from) == (
        10_000,
        30,
        "key_info",
    )
    assert (status.credits_today, status.credits_month) == (12 + 2, 345 + 2)
    assert status.as_dict()["credits_month"] == 347


def test_without_key_info_the_plan_falls_back_to_the_setting(fake, clock, caplog):
    fake.script(KEY_INFO_PATH, Error(500), Error(500), Error(500))
    source = make_source(fake, clock, monthly_credits=10_000)
    assert source.load_plan() is None
    assert "using [coinmarketcap] monthly_credits" in caplog.text
    status = source.status()
    assert (status.credit_limit_monthly, status.rate_limit_minute, status.plan_from) == (
        10_000,
        None,
        "settings",
    )
    assert source.monthly_allowance == 10_000
    source.close()


def test_an_invalid_key_stops_uBot_at_start_up(fake, clock, source):
    fake.script(KEY_INFO_PATH, Error(1001))
    with pytest.raises(
        FatalSourceError,
        match=r"^CoinMarketCap says the API key is invalid; set a valid key in UBOT_COINMARKETCAP_API_KEY",
    ):
        source.load_plan()


# -- rate limits: skipped ticks, no calls ---------------------------------------------------------


def test_while_rate_limited_ticks_are_skipped_without_calling_cmc(fake, clock, source):
    fake.script(LISTINGS_PATH, rate_limited(1008))
    message = "rate limited (minute request limit (1008)) until 2026-11-24T08:32:00.000Z"
    with pytest.raises(SourceError) as caught:
        source.fetch(now_ms(clock))
    assert str(caught.value) == message
    status = source.status()
    assert (status.state, status.reason, status.resume_at) == ("degraded", message, T0 + 60)
    assert status.as_dict()["resume_at"] == "2026-11-24T08:32:00.000Z"
    assert len(fake.calls()) == 1

    clock.advance(30)
    with pytest.raises(SourceError) as caught:
        source.fetch(now_ms(clock))
    assert str(caught.value) == message
    assert len(fake.calls()) == 1  # no call while rate limited
    assert source.status().skipped_rate_limited == 1

    clock.advance(30)  # the minute has passed
    raw = source.fetch(now_ms(clock))
    assert len(raw.listings["data"]) == 100
    assert len(fake.calls()) == 3
    status = source.status()
    assert (status.state, status.reason, status.resume_at) == ("ok", "", None)


def test_a_daily_limit_skips_every_tick_until_utc_midnight(fake, clock, source):
    fake.script(LISTINGS_PATH, rate_limited(1009))
    with pytest.raises(
        SourceError, match=r"^rate limited \(daily credit limit \(1009\)\) until 2026-11-25T00:00:00.000Z$"
    ):
        source.fetch(now_ms(clock))
    midnight = parse_iso_ms("2026-11-25T00:00:00Z") / 1000
    ticks = 0
    while clock.now() + 60 < midnight:
        clock.advance(60)
        with pytest.raises(SourceError):
            source.fetch(now_ms(clock))
        ticks += 1
    assert len(fake.calls()) == 1 and source.status().skipped_rate_limited == ticks == 928
    clock.set(midnight)
    source.fetch(now_ms(clock))
    assert source.status().state == "ok"


def test_retry_after_is_honoured(fake, clock, source):
    fake.script(LISTINGS_PATH, rate_limited(1008, 5))
    with pytest.raises(SourceError, match="until 2026-11-24T08:31:05.000Z"):
        source.fetch(now_ms(clock))
    clock.advance(5)
    source.fetch(now_ms(clock))


def test_a_monthly_limit_waits_for_the_plans_own_reset(fake, clock, source):
    source.load_plan()  # the fake's plan resets 2026-12-01T00:00:00Z
    fake.script(LISTINGS_PATH, rate_limited(1010))
    with pytest.raises(SourceError, match=r"monthly credit limit \(1010\)\) until 2026-12-01T00:00:00.000Z"):
        source.fetch(now_ms(clock))
    assert source.status().resume_at == parse_iso_ms("2026-12-01T00:00:00Z") / 1000


# -- transient, fatal, bad ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "says"),
    [
        (
            [Error(500)] * 3,
            "listings: server error (HTTP 500, CoinMarketCap error 500: An internal server error occurred)",
        ),
        ([Reset()] * 3, "listings: the connection was reset"),
        (
            [Html(503, "503 Service Unavailable")] * 3,
            "listings: server error (HTTP 503, expected JSON, got an HTML page titled '503 Service Unavailable')",
        ),
    ],
)
def test_a_transient_fault_skips_the_tick_after_bounded_retries(fake, clock, faults, says):
    source = make_source(fake, clock, budget_s=2.5)  # room for one retry after a 1 s backoff
    fake.script(LISTINGS_PATH, *faults)
    with pytest.raises(SourceError) as caught:
        source.fetch(now_ms(clock))
    assert str(caught.value) == says + " (gave up after 2 attempts)"
    assert len(fake.calls()) == 2
    assert source.status().state == "degraded" and source.status().reason == str(caught.value)
    # the next tick tries again (the third scripted fault, then success on its retry)
    clock.set(T0 + 60)
    source.fetch(now_ms(clock))
    assert source.status().state == "ok"
    source.close()


def test_a_slow_cmc_skips_the_tick(fake, clock):
    source = make_source(fake, clock, budget_s=1.5, timeout=0.2)  # no room for a retry
    fake.script(LISTINGS_PATH, Slow())
    with pytest.raises(SourceError, match=r"^listings: no answer within 0.2 s \(timed out\)$"):
        source.fetch(now_ms(clock))
    assert len(fake.calls()) == 1
    source.close()


def test_a_fatal_error_stops_the_source(fake, clock, source):
    fake.script(LISTINGS_PATH, Error(1007))
    with pytest.raises(FatalSourceError) as caught:
        source.fetch(now_ms(clock))
    assert str(caught.value).startswith(
        "the API key has been disabled by CoinMarketCap (contact their support)"
    )
    assert "UBOT_COINMARKETCAP_API_KEY or [coinmarketcap] api_key" in str(caught.value)
    assert source.status().state == "degraded"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            "<html><title>Oops</title></html>",
            "listings: expected JSON, got an HTML page titled 'Oops' (HTTP 200)",
        ),
        (
            '{"status": {"error_code": 0}, "data": {}}',
            "listings: 'data' must be an array of coins, got an object",
        ),
    ],
)
def test_a_bad_response_skips_the_tick_with_a_precise_reason(fake, clock, source, body, says):
    fake.script(LISTINGS_PATH, Raw(body))
    with pytest.raises(SourceError) as caught:
        source.fetch(now_ms(clock))
    assert str(caught.value) == says
    assert len(fake.calls()) == 1


# -- the global metrics are secondary -------------------------------------------------------------


def test_failing_global_metrics_leave_the_listings_alone(fake, clock, source, caplog):
    fake.script(GLOBAL_PATH, Error(500), Error(500), Error(500))
    raw = source.fetch(now_ms(clock))
    assert raw.global_metrics is None
    assert len(parse_listings(raw.listings)) == 100
    reason = (
        "global metrics left out: global metrics: server error (HTTP 500, CoinMarketCap error 500: "
        "An internal server error occurred) (gave up after 3 attempts)"
    )
    assert source.status().reason == reason and source.status().state == "degraded"
    assert reason in caplog.text
    assert source.fetch(now_ms(clock)).global_metrics is not None
    assert source.status().state == "ok"


def test_global_metrics_outside_the_plan_are_turned_off(fake, clock, source):
    fake.script(GLOBAL_PATH, Error(1006))
    assert source.fetch(now_ms(clock)).global_metrics is None
    assert source.status().global_metrics is False
    assert "global metrics turned off: the API key's plan does not include" in source.status().reason
    source.fetch(now_ms(clock))
    assert [s.path for s in fake.calls()] == [LISTINGS_PATH, GLOBAL_PATH, LISTINGS_PATH]
    assert source.status().state == "ok"


def test_rate_limited_global_metrics_return_the_listings_then_skip(fake, clock, source):
    fake.script(GLOBAL_PATH, rate_limited(1008))
    raw = source.fetch(now_ms(clock))
    assert raw.global_metrics is None and len(raw.listings["data"]) == 100
    assert source.status().resume_at == T0 + 60
    clock.advance(30)
    with pytest.raises(SourceError, match="rate limited"):
        source.fetch(now_ms(clock))
    assert len(fake.calls()) == 2


def test_no_global_call_once_the_budget_is_spent(fake, clock):
    source = make_source(fake, clock, budget_s=2.5)
    raw = source.fetch(now_ms(clock) - 3000)  # a tick that fires 3 s late: the listings still come
    assert raw.global_metrics is None and len(raw.listings["data"]) == 100
    assert [s.path for s in fake.calls()] == [LISTINGS_PATH]
    assert source.status().reason == "global metrics left out: the tick's time budget is used up"
    source.close()


def test_with_global_false_asks_only_for_listings(fake, clock):
    source = make_source(fake, clock, with_global=False)
    assert source.fetch(now_ms(clock)).global_metrics is None
    assert [s.path for s in fake.calls()] == [LISTINGS_PATH]
    assert source.status().state == "ok" and source.status().credits_today == 1
    source.close()


# -- recording and secrecy ------------------------------------------------------------------------


def test_each_tick_is_recorded(fake, clock, tmp_path):
    source = make_source(fake, clock, recorder=Recorder(tmp_path))
    source.fetch(now_ms(clock))
    fake.script(LISTINGS_PATH, Error(500), Error(500), Error(500))
    clock.advance(60)
    with pytest.raises(SourceError):
        source.fetch(now_ms(clock))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20261124T083100Z-000001.json"]
    source.close()


def test_a_failing_recorder_does_not_lose_the_tick(fake, clock, tmp_path, caplog):
    blocked = tmp_path / "record"
    recorder = Recorder(blocked)
    blocked.rmdir()
    blocked.write_text("not a directory")
    source = make_source(fake, clock, recorder=recorder)
    assert len(source.fetch(now_ms(clock)).listings["data"]) == 100
    assert "cannot record tick to" in caplog.text
    source.close()


def test_the_key_stays_out_of_the_source(fake, clock, source, caplog):
    caplog.set_level(logging.DEBUG)
    source.load_plan()
    fake.script(LISTINGS_PATH, Error(1001, message=f"bad key {KEY}"))
    with pytest.raises(FatalSourceError) as caught:
        source.fetch(now_ms(clock))
    for text in (str(caught.value), repr(source), repr(source.status()), caplog.text):
        assert KEY not in text
