"""Container: keeps the latest snapshot as ready bytes + ETag and the open candles; ends each tick."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.support.actors import Inbox
from tests.support.market import T0, fetched, market
from ubot.actors.container import Container
from ubot.bus import EntryId
from ubot.market.candles import CandleBook
from ubot.market.view import etag_of
from ubot.messages import Candled, GetOpenCandle, GetSnapshot, ResolveCoin, Stored, TickDone

WAIT = 10.0


def candled(number: int, ts: int) -> Candled:
    snap = market(ts)
    book = CandleBook()
    book.apply(snap.ids, snap.quote_ts_ms, snap.column("price"))
    stored = Stored.extend(replace(fetched(number, snap), position=(number, 9)), snapshot_id=number)
    opened = {tf: book.open_candles(tf) for tf in book.timeframes}
    return Candled.extend(stored, open_candles=opened).timed("ohlc", 2.0)


@pytest.fixture
def container():
    monitor = Inbox()
    return Container.start(monitor.ref), monitor


def test_a_candled_snapshot_ends_the_tick_at_the_monitor(container) -> None:
    ref, monitor = container

    ref.tell(candled(1, T0))

    done = monitor.next(TickDone)
    assert (done.tick.number, done.outcome, done.coins) == (1, "ok", 5)
    assert done.snapshot_ms == T0
    assert done.position == (1, 9)
    assert [stage for stage, _ in done.stages] == ["fetch", "ohlc", "container"]


def test_it_answers_with_the_latest_snapshot(container) -> None:
    ref, monitor = container
    assert ref.ask(GetSnapshot(), timeout=WAIT) is None  # nothing yet
    ref.tell(candled(1, T0))
    ref.tell(candled(2, T0 + 60_000))

    body, etag = ref.ask(GetSnapshot(), timeout=WAIT)

    doc = json.loads(body)
    assert doc["timestamp"] == "2024-03-10T00:01:00.000Z"
    assert [coin["symbol"] for coin in doc["coins"]] == ["BTC", "ETH", "USDT", "BNB", "SOL"]
    assert etag == etag_of(body)
    assert [done.tick.number for done in monitor.received()] == [1, 2]

    body, etag = ref.ask(GetSnapshot(("SOL", "NOPE", "BTC")), timeout=WAIT)
    doc = json.loads(body)
    assert [coin["symbol"] for coin in doc["coins"]] == ["SOL", "BTC"]
    assert doc["unknown_symbols"] == ["NOPE"]
    assert etag == etag_of(body)


def test_it_resolves_coins_and_gives_open_candles(container) -> None:
    ref, _ = container
    assert ref.ask(ResolveCoin("BTC"), timeout=WAIT) is None
    assert ref.ask(GetOpenCandle(1, "1m"), timeout=WAIT) is None
    message = candled(1, T0)
    ref.tell(message)

    assert ref.ask(ResolveCoin("eth"), timeout=WAIT) == (1027, "ETH")
    assert ref.ask(ResolveCoin("1027"), timeout=WAIT) == (1027, "ETH")
    assert ref.ask(ResolveCoin("NOPE"), timeout=WAIT) is None
    price = float(message.snapshot.column("price")[0])
    assert ref.ask(GetOpenCandle(1, "1h"), timeout=WAIT) == (T0, price, price, price, price)
    assert ref.ask(GetOpenCandle(999, "1h"), timeout=WAIT) is None


def test_a_bad_query_fails_for_the_asker_only(container) -> None:
    ref, _ = container

    with pytest.raises(TypeError, match="unexpected message"):
        ref.ask("what?", timeout=WAIT)

    assert ref.is_alive()
    assert ref.ask(GetSnapshot(), timeout=WAIT) is None


def test_each_tick_goes_on_the_bus_and_a_gateway_serves_the_same_answers() -> None:
    """The engine's side (the Container and the EventPublisher) and the gateway's (LatestSnapshot,
    the StreamHub) over an in-process bus: the document, TickReady, the snapshot event."""
    from ubot.bus import EVENTS, TICKS, InProcessBus, StreamEvent, TickReady
    from ubot.stream.latest import LatestSnapshot
    from ubot.stream.publisher import EventPublisher

    bus = InProcessBus()
    monitor = Inbox()
    ref = Container.start(monitor.ref, EventPublisher(bus).tick)
    served = LatestSnapshot(bus)
    assert served.get(None) is None  # nothing yet
    ref.tell(candled(1, T0))
    ref.tell(candled(2, T0 + 60_000))
    monitor.next(TickDone)
    monitor.next(TickDone)  # published before the Monitor hears of the tick

    assert served.get(None) == ref.ask(GetSnapshot(), timeout=WAIT)
    for symbols in (("SOL", "NOPE", "BTC"), ("1",), ("eth",)):
        assert served.get(symbols) == ref.ask(GetSnapshot(symbols), timeout=WAIT), symbols
    ticks = [e.message for e in bus.read(TICKS, EntryId(0, 0), timeout=0).entries]
    assert ticks == [
        TickReady(n, n, T0 + (n - 1) * 60_000, ticks[n - 1].scheduled_ms, ticks[n - 1].fired_ms)
        for n in (1, 2)
    ]
    events = [e.message for e in bus.read(EVENTS, EntryId(0, 0), timeout=0).entries]
    assert [type(e) for e in events] == [StreamEvent, StreamEvent]
    _, etag = ref.ask(GetSnapshot(), timeout=WAIT)
    last = json.loads(events[-1].data)
    assert (events[-1].event, events[-1].user_id) == ("snapshot", None)
    assert last["etag"] == etag and last["timestamp"] == "2024-03-10T00:01:00.000Z"
