"""Fetcher: Tick -> source -> parsed snapshot -> Store; every failure skips the tick, with a reason."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.support.actors import Inbox
from tests.support.market import T0
from ubot.actors.fetcher import Fetcher
from ubot.market.simulated import SimulatedSource
from ubot.market.snapshot import RawMarket
from ubot.market.source import SourceError, SourceExhausted
from ubot.messages import Fetched, TickDone
from ubot.messages import SourceExhausted as Exhausted
from ubot.schedule import Tick

WAIT = 10.0


class ScriptedSource:
    """Answers each fetch with the next scripted answer: a RawMarket, or an exception to raise."""

    name = "scripted"

    def __init__(self, *answers: RawMarket | Exception) -> None:
        self.answers = list(answers)
        self.asked: list[int] = []
        self.closed = False

    def fetch(self, at_ms: int) -> RawMarket:
        self.asked.append(at_ms)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        self.closed = True


def good(position: tuple[int, int] | None = None) -> RawMarket:
    return replace(SimulatedSource(limit=5, seed=1).fetch(T0), position=position, origin="")


def not_listings(origin: str) -> RawMarket:
    ok = {"timestamp": "2024-03-10T00:00:00.000Z", "error_code": 0}
    return RawMarket(listings={"status": ok, "data": {"not": "a list"}}, origin=origin)


@pytest.fixture
def start():
    """start(*answers) -> (fetcher ref, source, store inbox, monitor inbox)."""

    def start(*answers):
        source = ScriptedSource(*answers)
        store, monitor = Inbox(), Inbox()
        return Fetcher.start(source, store.ref, monitor.ref, "USD"), source, store, monitor

    return start


def tick(number: int) -> Tick:
    return Tick(number, T0 + number * 60_000, T0 + number * 60_000 + 3)


def test_a_tick_becomes_a_parsed_snapshot_for_the_store(start) -> None:
    fetcher, source, store, monitor = start(good(position=(3, 10)))

    fetcher.tell(tick(1))

    message = store.next(Fetched)
    assert message.tick == tick(1)
    assert source.asked == [tick(1).scheduled_ms]
    assert len(message.snapshot) == 5 and message.snapshot.timestamp_ms == T0
    assert message.source == "scripted"
    assert [stage for stage, _ in message.stages] == ["fetch"]
    assert message.position == (3, 10)
    assert monitor.received() == []


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (RuntimeError("connection reset"), "fetch failed: RuntimeError: connection reset"),
        (SourceError("HTTP 502 from the API"), "HTTP 502 from the API"),
    ],
    ids=["unexpected error", "SourceError"],
)
def test_a_failing_source_skips_the_tick_and_the_fetcher_goes_on(start, failure, reason) -> None:
    fetcher, _, store, monitor = start(failure, good())

    fetcher.tell(tick(1))
    done = monitor.next(TickDone)
    assert (done.tick, done.outcome, done.reason) == (tick(1), "skipped", reason)
    assert [stage for stage, _ in done.stages] == ["fetch"]

    fetcher.tell(tick(2))
    assert store.next(Fetched).tick.number == 2
    assert store.received() == [] and monitor.received() == []


@pytest.mark.parametrize(("origin", "named"), [("0003.json.gz", "0003.json.gz"), ("", "scripted")])
def test_a_bad_listings_document_skips_the_tick_naming_its_origin(start, origin, named) -> None:
    fetcher, _, store, monitor = start(not_listings(origin), good())

    fetcher.tell(tick(1))
    done = monitor.next(TickDone)
    assert done.outcome == "skipped"
    assert done.reason == f"{named}: listings: 'data' must be an array, got dict"

    fetcher.tell(tick(2))
    assert store.next(Fetched).tick.number == 2


def test_an_exhausted_source_tells_the_monitor(start) -> None:
    fetcher, _, store, monitor = start(SourceExhausted("replay finished"))

    fetcher.tell(tick(1))

    assert monitor.next(Exhausted) == Exhausted(tick(1))
    assert store.received() == []


def test_stopping_the_fetcher_closes_its_source(start) -> None:
    fetcher, source, _, _ = start()

    fetcher.stop(timeout=WAIT)

    assert source.closed
