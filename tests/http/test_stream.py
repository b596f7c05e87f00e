"""GET /v1/stream through the ASGI app, read write by write; and the snapshot event's payload.

Each stream runs the app on an event loop of its own (a thread): the test reads what the app sends,
and ``close()`` is the client leaving (the server's ``http.disconnect``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from falcon.testing import TestClient

from tests.http.conftest import TOKENS, Canned
from tests.http.support import assert_error, parse_sse
from tests.support.asgi_stream import Stream, receiver, scope_of
from ubot.bus import Bus, EntryId, InProcessBus
from ubot.http.app import create_app
from ubot.http.shapes import EVENTS
from ubot.market.snapshot import parse_listings
from ubot.stream.events import snapshot_event
from ubot.stream.hub import StreamHub
from ubot.stream.publisher import EventPublisher

WAIT_S = 30.0
ALICE = {"Authorization": "Bearer token-of-7"}


def hub_on(bus: Bus | None = None, capacity: int = 1024) -> StreamHub:
    return StreamHub(bus or InProcessBus(), capacity, poll_s=1.0).start()


def publish(hub: StreamHub, event: str, data: dict, user_id: int | None = None) -> EntryId:
    """Publish on the hub's bus (as the engine does), and wait until the hub's relay has it."""
    entry_id = EventPublisher(hub.bus).publish(event, data, user_id)
    assert hub.caught_up(entry_id, WAIT_S)
    return entry_id


@dataclass
class Setup:
    hub: StreamHub
    app: Any

    def publish(self, event: str, data: dict, user_id: int | None = None) -> EntryId:
        return publish(self.hub, event, data, user_id)

    def open(
        self,
        query: str = "",
        headers: dict[str, str] | None = None,
        remote_addr: str = "127.0.0.1",
    ) -> Stream:
        """Open a stream as a client at ``remote_addr``."""
        return Stream(self.app, scope_of("/v1/stream", query, headers, remote_addr))


@pytest.fixture
def setup(canned: Canned) -> Iterator[Setup]:
    hub = hub_on(InProcessBus(maxlen=4), capacity=4)
    yield Setup(hub, create_app(canned.gateway, hub=hub, max_streams=2, heartbeat_s=30))
    hub.close()


def test_a_client_that_does_not_read_holds_back_no_other_stream(canned: Canned) -> None:
    """Two streams on one event loop, as one gateway process serves them: one client reads nothing
    (the server's first write to it never completes, as on a socket whose buffers are full), the
    other still gets every event."""
    hub = hub_on()
    app = create_app(canned.gateway, hub=hub, max_streams=2, heartbeat_s=30)

    async def run() -> tuple[list[str], list[dict]]:
        left = asyncio.Event()
        healthy: asyncio.Queue[bytes] = asyncio.Queue()
        stalled: list[dict] = []
        wrote_to_stalled = asyncio.Event()

        async def send_healthy(message: dict) -> None:
            if message.get("body"):
                healthy.put_nowait(message["body"])

        async def send_stalled(message: dict) -> None:
            stalled.append(message)
            if message.get("body"):
                wrote_to_stalled.set()
                await asyncio.Event().wait()  # this write never completes

        calls = [
            asyncio.ensure_future(
                app(scope_of("/v1/stream", "", None, "10.0.0.1"), receiver(left), send_stalled)
            ),
            asyncio.ensure_future(
                app(scope_of("/v1/stream", "", None, "10.0.0.2"), receiver(left), send_healthy)
            ),
        ]
        await asyncio.wait_for(wrote_to_stalled.wait(), WAIT_S)
        await asyncio.wait_for(healthy.get(), WAIT_S)  # its head: both streams are open
        published = [
            str(await asyncio.to_thread(publish, hub, "snapshot", {"tick": tick})) for tick in range(3)
        ]
        received: list[str] = []
        while len(received) < len(published):
            received += [m["id"] for m in parse_sse(await asyncio.wait_for(healthy.get(), WAIT_S))]
        assert received == published
        left.set()
        await asyncio.wait_for(calls[1], WAIT_S)  # the healthy client left: its stream ended
        calls[0].cancel()
        return received, stalled

    try:
        received, stalled = asyncio.run(run())
    finally:
        hub.close()
    assert len(received) == 3
    assert [m["type"] for m in stalled] == ["http.response.start", "http.response.body"]


def data(messages: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    return [(m["id"], m["event"], m["data"]) for m in messages]


def test_a_fresh_stream_starts_with_retry_and_its_position_then_gets_new_events(setup) -> None:
    zero = setup.publish("snapshot", {"tick": 0})  # before the connection: not replayed
    stream = setup.open()
    assert stream.status == "200 OK"
    assert stream.headers["content-type"] == "text/event-stream"
    assert stream.headers["cache-control"] == "no-cache"
    assert stream.headers["x-accel-buffering"] == "no"
    assert "content-length" not in stream.headers
    assert stream.next() == [{"retry": "3000", "id": str(zero)}]
    first = setup.publish("snapshot", {"tick": 1})
    assert data(stream.next()) == [(str(first), "snapshot", '{"tick":1}')]
    second = setup.publish("snapshot", {"tick": 2})
    third = setup.publish("snapshot", {"tick": 3})
    assert data(stream.messages(2)) == [
        (str(second), "snapshot", '{"tick":2}'),
        (str(third), "snapshot", '{"tick":3}'),
    ]
    stream.close()


def test_anonymous_clients_get_public_events_users_their_own_alerts_too(setup) -> None:
    anonymous = setup.open()
    alice = setup.open(headers=ALICE)
    for stream in (anonymous, alice):
        stream.next()
    setup.publish("alert", {"for": 8}, user_id=8)
    mine = setup.publish("alert", {"for": 7}, user_id=7)
    tick = setup.publish("snapshot", {"tick": 1})
    assert data(anonymous.next()) == [(str(tick), "snapshot", '{"tick":1}')]
    assert data(alice.messages(2)) == [
        (str(mine), "alert", '{"for":7}'),
        (str(tick), "snapshot", '{"tick":1}'),
    ]
    anonymous.close()
    alice.close()


def test_the_token_may_come_in_the_query_string(setup) -> None:
    stream = setup.open(query="access_token=token-of-8")
    stream.next()
    setup.publish("alert", {"for": 7}, user_id=7)
    theirs = setup.publish("alert", {"for": 8}, user_id=8)
    assert data(stream.next()) == [(str(theirs), "alert", '{"for":8}')]
    stream.close()


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("access_token=nope", None),
        ("", {"Authorization": "Bearer nope"}),
        ("", {"Authorization": "Basic dXNlcjpwYXNz"}),
        ("access_token=token-of-7", {"Authorization": "Bearer nope"}),  # the header is the credential
    ],
)
def test_a_credential_that_is_sent_must_be_valid(canned, query, headers) -> None:
    client = TestClient(create_app(canned.gateway, hub=hub_on()))
    assert_error(client.simulate_get("/v1/stream", query_string=query, headers=headers), 401)


def test_last_event_id_resumes_exactly_after_it(setup) -> None:
    ids = [setup.publish("snapshot", {"n": n}) for n in range(3)]
    stream = setup.open(headers={"Last-Event-ID": str(ids[0])})
    assert stream.next() == [{"retry": "3000"}]  # no id: the client has one
    assert [m["id"] for m in stream.next()] == [str(i) for i in ids[1:]]
    stream.close()
    # EventSource cannot send the header on its first request: the query parameter does it.
    stream = setup.open(query=f"last_event_id={ids[1]}")
    stream.next()
    assert [m["id"] for m in stream.next()] == [str(ids[2])]
    stream.close()
    # On reconnection EventSource sends the header, and the URL still has the first id: the header wins.
    stream = setup.open(query=f"last_event_id={ids[0]}", headers={"Last-Event-ID": str(ids[1])})
    stream.next()
    assert [m["id"] for m in stream.next()] == [str(ids[2])]
    stream.close()


@pytest.mark.parametrize(
    "last", ["4999", "123", "not-an-id", str(10**30), "1-0", "99999999999999-0", "1-2-3", f"{10**30}-0"]
)
def test_an_unknown_last_event_id_gets_a_reset_then_goes_on(setup, canned, last) -> None:
    ids = [setup.publish("snapshot", {"n": n}) for n in range(6)]  # the ring keeps 4
    stream = setup.open(headers={"Last-Event-ID": last})
    stream.next()
    reset = stream.next()
    assert data(reset) == [(str(ids[-1]), "reset", f'{{"last_id":"{ids[-1]}","refetch":["/v1/snapshot"]}}')]
    new = setup.publish("snapshot", {"n": 6})
    assert [m["id"] for m in stream.next()] == [str(new)]
    stream.close()


def test_a_reset_event_fits_its_declared_shape(setup) -> None:
    setup.publish("snapshot", {"n": 0})
    stream = setup.open(headers={**ALICE, "Last-Event-ID": "1"})
    stream.next()
    (reset,) = stream.next()
    assert reset["event"] == "reset"
    decoded = msgspec.json.decode(reset["data"], type=EVENTS["reset"])
    assert decoded.refetch == ["/v1/snapshot", "/v1/me/alerts"]
    stream.close()


def test_head_gives_the_stream_headers_without_opening_one(setup) -> None:
    client = TestClient(setup.app)
    for _ in range(3):  # more than the slots: none is taken
        head = client.simulate_head("/v1/stream")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"] == "text/event-stream"


def test_an_authenticated_reset_names_the_alerts_too(setup) -> None:
    stream = setup.open(headers={**ALICE, "Last-Event-ID": "1"})
    stream.next()
    assert stream.next()[0]["data"].endswith('"refetch":["/v1/snapshot","/v1/me/alerts"]}')
    stream.close()


def test_a_malformed_last_event_id_parameter_is_a_400(canned) -> None:
    client = TestClient(create_app(canned.gateway, hub=hub_on()))
    result = client.simulate_get("/v1/stream", params={"last_event_id": "yesterday"})
    assert '"last_event_id"' in assert_error(result, 400)["description"]


def test_heartbeats_when_nothing_happens(canned) -> None:
    hub = hub_on()
    stream = Setup(hub, create_app(canned.gateway, hub=hub, heartbeat_s=0.001)).open()
    stream.next()
    assert stream.next() == [{":": "heartbeat"}]
    publish(hub, "alert", {}, user_id=9)  # someone else's: still nothing for this client
    assert stream.next() == [{":": "heartbeat"}]
    stream.close()


def test_a_revoked_token_ends_the_stream_at_the_next_heartbeat(canned, monkeypatch) -> None:
    hub = hub_on()
    stream = Setup(hub, create_app(canned.gateway, hub=hub, heartbeat_s=0.001)).open(headers=ALICE)
    stream.next()
    assert stream.next() == [{":": "heartbeat"}]
    monkeypatch.delitem(TOKENS, "token-of-7")
    assert list(stream.chunks) == []
    stream.close()


def test_closing_the_hub_ends_every_stream_and_frees_its_slot(setup) -> None:
    streams = [setup.open(), setup.open(headers=ALICE, remote_addr="192.0.2.2")]
    for stream in streams:
        stream.next()
    assert setup.open(remote_addr="192.0.2.3").status == "503 Service Unavailable"  # both slots taken
    setup.publish("snapshot", {"last": True})
    setup.hub.close()
    for stream in streams:
        assert [m["event"] for m in stream.next()] == ["snapshot"]  # what was published is delivered
        assert list(stream.chunks) == []  # then the end
        stream.close()
    # Both slots are free again. A client reconnecting to a closed hub gets an empty stream
    # (EventSource retries later; the server is stopping).
    late = [setup.open(), setup.open(remote_addr="192.0.2.2")]
    for stream in late:
        assert stream.status == "200 OK"
        assert stream.next() == [{"retry": "3000", "id": str(setup.hub.last_id)}]
        assert list(stream.chunks) == []
        stream.close()


def test_beyond_the_limit_a_503_with_retry_after_until_a_stream_closes(setup) -> None:
    first, second = setup.open(remote_addr="192.0.2.1"), setup.open(remote_addr="192.0.2.2")
    client = TestClient(setup.app)
    result = client.simulate_get("/v1/stream", remote_addr="192.0.2.3")
    assert assert_error(result, 503) == {
        "title": "Too many streams",
        "description": "2 event streams are open, the most this server allows; retry in 10 s",
    }
    assert result.headers["retry-after"] == "10"
    first.close()  # the client leaves: its slot is free
    third = setup.open(remote_addr="192.0.2.3")
    assert third.status == "200 OK"
    for stream in (second, third):
        stream.close()


def test_a_stream_that_was_never_read_frees_its_slot_when_closed(setup) -> None:
    for _ in range(5):
        setup.open().close()
    assert setup.open().status == "200 OK"


def test_without_a_hub_the_route_answers_503_not_enabled(canned) -> None:
    result = TestClient(create_app(canned.gateway)).simulate_get("/v1/stream")
    assert assert_error(result, 503) == {
        "title": "Not enabled",
        "description": "The event stream is not enabled in this process.",
    }


def test_a_failing_stream_ends_and_its_log_never_shows_the_token(setup, monkeypatch, caplog) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(setup.hub, "read_async", broken)
    stream = setup.open(query="access_token=token-of-7")
    stream.next()
    with caplog.at_level(logging.ERROR):
        assert list(stream.chunks) == []
    stream.close()
    assert "event stream of user 7 failed" in caplog.text
    assert "token-of-7" not in caplog.text


def listings(*coins: tuple[int, str, int | None, float, float | None]) -> dict:
    return {
        "status": {"timestamp": "2024-10-16T00:05:00.000Z", "error_code": 0},
        "data": [
            {
                "id": coin_id,
                "symbol": symbol,
                "name": symbol.title(),
                "cmc_rank": rank,
                "quote": {"USD": {"price": price, "percent_change_24h": change}},
            }
            for coin_id, symbol, rank, price, change in coins
        ],
    }


def test_the_snapshot_event_is_small_and_names_the_best_ranked_coins() -> None:
    coins = [(100 + i, f"C{i}", 12 - i, float(i), 0.5) for i in range(12)]
    coins.append((1, "BTC", None, 67000.0, None))  # unranked: never in the top
    snapshot = parse_listings(listings(*coins))
    event = snapshot_event(snapshot, etag='"abc-1"')
    assert event["timestamp"] == "2024-10-16T00:05:00.000Z"
    assert event["coins"] == 13
    assert event["etag"] == '"abc-1"'
    assert [c["rank"] for c in event["top"]] == list(range(1, 11))
    assert event["top"][0] == {
        "id": 111,
        "symbol": "C11",
        "rank": 1,
        "price": 11.0,
        "percent_change_24h": 0.5,
    }
    assert "etag" not in snapshot_event(snapshot)
    assert EventPublisher(InProcessBus()).publish("snapshot", event)  # strict JSON
    msgspec.json.decode(msgspec.json.encode(event), type=EVENTS["snapshot"])  # the declared shape


def test_a_snapshot_event_turns_missing_numbers_into_null() -> None:
    snapshot = parse_listings(listings((1, "BTC", 1, 67000.0, None)))
    assert snapshot_event(snapshot, top=3)["top"] == [
        {"id": 1, "symbol": "BTC", "rank": 1, "price": 67000.0, "percent_change_24h": None}
    ]
