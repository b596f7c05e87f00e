"""CoinMarketCap wired into uBot, in-process: the source the settings choose, the credits fitted to
the plan at start-up, and what the running pipeline's ``/health`` says about credits and rate limits.

The pipeline runs on a :class:`FakeClock` against the fake CMC server over real sockets: each tick
fires when the test moves the clock to the next deadline, and the test waits for that tick to
have gone through the Monitor (an ask), never for time to pass.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakecmc import KEY, T0_MS, FakeCmc, Ok, Raw, rate_limited
from tests.support.waits import wait_until
from ubot.clocks import FakeClock
from ubot.config import ConfigError, Settings, load_settings
from ubot.http.gateway import Gateway
from ubot.market.cmc_source import CmcSource
from ubot.market.coinmarketcap import GLOBAL_PATH, KEY_INFO_PATH, LISTINGS_PATH
from ubot.market.credits import monthly_credits, shortest_interval
from ubot.market.source import FatalSourceError
from ubot.market.sources import fit_to_plan, make_source
from ubot.messages import GetClockStats, GetHealth
from ubot.models.tables import SnapshotRecord
from ubot.system import Actors, start_system, stop_system
from ubot.timeutil import iso_from_ms

T0 = T0_MS / 1000
WAIT = 10.0  # seconds: only reached when a test is about to fail
INTERVAL = 10  # seconds between ticks in the pipeline tests


@pytest.fixture
def fake() -> Iterator[FakeCmc]:
    server = FakeCmc(step_ms=60_000).start()
    yield server
    server.stop()


def settings_for(fake: FakeCmc, **environ: str) -> Settings:
    """Settings for ``--source cmc`` against ``fake``; ``environ``: more UBOT_* variables."""
    base = {
        "UBOT_MARKET_SOURCE": "cmc",
        "UBOT_COINMARKETCAP_API_KEY": KEY,
        "UBOT_COINMARKETCAP_BASE_URL": fake.base_url,
    }
    return load_settings(None, environ={**base, **environ})


# -- make_source ----------------------------------------------------------------------------------


def test_the_cmc_source_is_built_from_the_settings_without_a_call(fake, tmp_path) -> None:
    record = tmp_path / "recording"
    settings = settings_for(fake, UBOT_MARKET_INTERVAL="30", UBOT_MARKET_RECORD_DIR=str(record))
    source = make_source(settings, FakeClock(T0))
    try:
        assert isinstance(source, CmcSource) and source.name == "cmc"
        assert source.client.base_url == fake.base_url
        assert (source.limit, source.convert, source.budget_s) == (100, "USD", 15.0)
        assert source.recorder is not None and source.recorder.directory == str(record)
        assert record.is_dir()
        assert fake.calls() == []
    finally:
        source.close()


@pytest.mark.parametrize("where", ["under a file", "an existing read-only directory"])
def test_an_unwritable_record_directory_is_fatal(fake, tmp_path, where) -> None:
    if where == "under a file":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        target = blocker / "recording"
    else:
        target = Path("/proc")  # exists and lists, even for root, but takes no new file
    with pytest.raises(FatalSourceError) as caught:
        make_source(settings_for(fake, UBOT_MARKET_RECORD_DIR=str(target)))
    assert str(caught.value).startswith(f"cannot record into {target}: ")
    assert fake.calls() == []


def test_recording_needs_a_source_that_fetches(fake, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"--record.*--source cmc or simulated, not replay"):
        settings_for(
            fake,
            UBOT_MARKET_SOURCE="replay",
            UBOT_MARKET_REPLAY_DIR=str(tmp_path),
            UBOT_MARKET_RECORD_DIR=str(tmp_path),
        )


# -- fit_to_plan ----------------------------------------------------------------------------------


def fitted(settings: Settings) -> CmcSource:
    source = make_source(settings, FakeClock(T0))
    try:
        fit_to_plan(settings, source)
    finally:
        source.close()
    return source  # type: ignore[return-value]


def test_fit_to_plan_stretches_the_interval_to_the_shortest_that_fits(fake, caplog) -> None:
    caplog.set_level(logging.INFO)
    settings = settings_for(fake, UBOT_MARKET_INTERVAL="60")
    source = fitted(settings)
    shortest = shortest_interval(100, fake.plan_monthly)
    assert shortest == 540  # 100 coins + global metrics = 2 credits a tick, 10,000 a month
    assert settings.market.interval == shortest
    assert source.budget_s == shortest / 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"CoinMarketCap credits: every 60 s uses ~{monthly_credits(100, 60):,} a month (31-day month); "
        f"the plan allows 10,000; it would run out: the shortest interval that fits is {shortest} s",
        f"[coinmarketcap] fit_to_plan: interval stretched from 60 s to {shortest} s",
    ]
    assert [s.path for s in fake.calls()] == [KEY_INFO_PATH]  # the plan costs no credit


def test_without_fit_to_plan_the_projection_is_only_a_warning(fake, caplog) -> None:
    settings = settings_for(fake, UBOT_MARKET_INTERVAL="60", UBOT_COINMARKETCAP_FIT_TO_PLAN="false")
    source = fitted(settings)
    assert settings.market.interval == 60 and source.budget_s == 30
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "the plan allows 10,000; it would run out: the shortest interval that fits is 540 s" in warnings[0]


def test_a_configuration_that_fits_is_left_alone(fake, caplog) -> None:
    caplog.set_level(logging.INFO)
    settings = settings_for(fake, UBOT_MARKET_INTERVAL="600")
    fitted(settings)
    assert settings.market.interval == 600
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if "credits" in r.getMessage()]
    assert lines == [
        (
            logging.INFO,
            f"CoinMarketCap credits: every 600 s uses ~{monthly_credits(100, 600):,} a month "
            "(31-day month); the plan allows 10,000",
        )
    ]


def test_without_key_info_the_allowance_comes_from_the_settings(fake, caplog) -> None:
    fake.script(KEY_INFO_PATH, Raw('{"data": {}}'))  # an answer of the wrong shape
    settings = settings_for(fake, UBOT_MARKET_INTERVAL="60", UBOT_COINMARKETCAP_MONTHLY_CREDITS="20000")
    fitted(settings)
    assert settings.market.interval == shortest_interval(100, 20_000) == 300
    assert "using [coinmarketcap] monthly_credits" in caplog.text


def test_a_refused_key_stops_the_start(fake) -> None:
    settings = settings_for(fake, UBOT_COINMARKETCAP_API_KEY="0000-not-the-key")
    with pytest.raises(FatalSourceError) as caught:
        fitted(settings)
    assert "API key is invalid" in str(caught.value)
    assert "UBOT_COINMARKETCAP_API_KEY" in str(caught.value)
    assert "0000-not-the-key" not in str(caught.value)


# -- the running pipeline -------------------------------------------------------------------------


@contextmanager
def pipeline(settings: Settings, db) -> Iterator[tuple[FakeClock, Actors, Gateway]]:
    """The pipeline as ``run.py`` starts it (source, plan, actors), on a fake clock just before T0."""
    clock = FakeClock(T0 - INTERVAL / 2)
    source = make_source(settings, clock)
    source.load_plan()  # type: ignore[attr-defined]
    actors = start_system(db, source, interval_s=settings.market.interval, clock=clock)
    gateway = Gateway(
        container=actors.container,
        history=actors.history,
        monitor=actors.monitor,
        clock=actors.clock,
        now=clock.now,
    )
    try:
        yield clock, actors, gateway
    finally:
        stop_system(actors)


def tick(clock: FakeClock, actors: Actors, number: int, at: float | None = None) -> None:
    """Move the clock to the next deadline (or to ``at``) and wait until tick ``number`` is done."""
    deadline = clock.wait_for_sleeper()
    clock.set(deadline if at is None else at)
    wait_until(
        lambda: actors.monitor.ask(GetHealth(), timeout=WAIT).ticks >= number, f"tick {number} to finish"
    )
    # Asked after the Monitor has told the Clock the tick is finished: once answered, the Clock is
    # idle again, so the next deadline fires a tick rather than counting an overrun.
    actors.clock.ask(GetClockStats(), timeout=WAIT)


def test_health_reports_the_credits_spent_and_the_plan(fake, db) -> None:
    settings = settings_for(fake, UBOT_MARKET_INTERVAL=str(INTERVAL), UBOT_COINMARKETCAP_FIT_TO_PLAN="false")
    with pipeline(settings, db) as (clock, actors, gateway):
        tick(clock, actors, 1)
        code, doc = gateway.health()
        now = clock.now()
    assert (code, doc["status"], doc["source"]) == (200, "ok", "cmc")
    # Every tick left in the month at 2 credits (the health document's clock is the fake one)
    month_end = datetime.fromtimestamp(now, tz=UTC).replace(day=28) + timedelta(days=4)
    month_end = month_end.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    ticks_left = len(range(int(now // INTERVAL) + 1, math.ceil(month_end / INTERVAL)))
    assert doc["source_status"] == {
        "state": "ok",
        "reason": "",
        "resume_at": None,
        "credits_today": fake.day_used + 2,  # from /v1/key/info, then 1 listings + 1 global
        "credits_month": fake.month_used + 2,
        "credit_limit_monthly": fake.plan_monthly,
        "credits_per_tick": 2,
        "projected_month": fake.month_used + 2 + 2 * ticks_left,
        "rate_limit_minute": fake.plan_minute,
        "plan_from": "key_info",
        "global_metrics": True,
        "skipped_rate_limited": 0,
    }


@pytest.mark.parametrize(
    ("limited", "wait_s", "limit"),
    [
        (rate_limited(1008, retry_after=120), 120, "minute request limit (1008)"),
        (rate_limited(1008), 60, "minute request limit (1008)"),
        (Raw("", http=429, headers={"Retry-After": "90"}), 90, "HTTP 429"),
    ],
    ids=["429-retry-after", "1008-no-retry-after", "bare-429-retry-after"],
)
def test_a_rate_limit_skips_the_ticks_without_calls_until_it_resets(fake, db, limited, wait_s, limit) -> None:
    fake.script(LISTINGS_PATH, Ok(), limited)
    settings = settings_for(fake, UBOT_MARKET_INTERVAL=str(INTERVAL), UBOT_COINMARKETCAP_FIT_TO_PLAN="false")
    with pipeline(settings, db) as (clock, actors, gateway):
        tick(clock, actors, 1)
        tick(clock, actors, 2)  # rate limited at T0 + INTERVAL
        resume_at = T0 + INTERVAL + wait_s
        tick(clock, actors, 3)
        tick(clock, actors, 4)
        calls = [s.path for s in fake.calls() if s.path != KEY_INFO_PATH]
        assert calls == [LISTINGS_PATH, GLOBAL_PATH, LISTINGS_PATH]  # none for ticks 3 and 4

        code, doc = gateway.health()
        assert (code, doc["status"], doc["ticks_ok"], doc["ticks_skipped"]) == (200, "degraded", 1, 3)
        status = doc["source_status"]
        assert status["state"] == "degraded"
        assert status["reason"] == f"rate limited ({limit}) until {iso_from_ms(round(resume_at * 1000))}"
        assert status["resume_at"] == iso_from_ms(round(resume_at * 1000))
        assert status["skipped_rate_limited"] == 2
        assert doc["reason"] == f"last tick skipped: {status['reason']}"

        tick(clock, actors, 5, at=resume_at)  # the limit has reset: CMC is asked again
        code, doc = gateway.health()
        assert (code, doc["status"], doc["ticks_ok"]) == (200, "ok", 2)
        assert (doc["source_status"]["state"], doc["source_status"]["resume_at"]) == ("ok", None)
        assert len(fake.calls(LISTINGS_PATH)) == 3
    assert SnapshotRecord.select().count() == 2
