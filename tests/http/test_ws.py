"""GET /v1/ws through the ASGI app: the stream's events over a WebSocket, subscriptions to symbols,
the same authentication, caps and resume as GET /v1/stream."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from falcon.testing import TestClient

from tests.http.conftest import TOKENS, Canned
from tests.http.support import assert_error
from tests.http.test_stream import ALICE, WAIT_S, hub_on, listings, publish, scope_of
from ubot.bus import SNAPSHOT, InProcessBus, SnapshotDocument
from ubot.http.app import create_app
from ubot.http.gateway import Gateway
from ubot.market.snapshot import parse_listings
from ubot.market.view import SnapshotView
from ubot.stream.latest import LatestSnapshot


class WsClient:
    """One WebSocket client: the app called on its own event loop, in a thread."""

    def __init__(
        self, app: Any, query: str = "", headers: dict[str, str] | None = None, addr: str = "127.0.0.1"
    ):
        scope = {**scope_of("/v1/ws", query, headers, addr), "type": "websocket", "subprotocols": []}
        scope.pop("method")
        self.sent: queue.Queue[dict] = queue.Queue()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._call(app, scope),), daemon=True)
        self._thread.start()
        assert self._ready.wait(WAIT_S)
        first = self.sent.get(timeout=WAIT_S)
        self.accepted = first["type"] == "websocket.accept"
        self.close_code = None if self.accepted else first.get("code")

    async def _call(self, app: Any, scope: dict) -> None:
        self._loop = asyncio.get_running_loop()
        self._inbox: asyncio.Queue[dict] = asyncio.Queue()
        await self._inbox.put({"type": "websocket.connect"})
        self._ready.set()

        async def send(message: dict) -> None:
            self.sent.put(message)

        try:
            await app(scope, self._inbox.get, send)
        finally:
            self.sent.put({"type": "ended"})

    def say(self, message: Any) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        self._loop.call_soon_threadsafe(self._inbox.put_nowait, {"type": "websocket.receive", "text": text})

    def next(self) -> dict:
        """The next message the server sends (a JSON object), skipping heartbeats."""
        while True:
            message = self.sent.get(timeout=WAIT_S)
            assert message["type"] == "websocket.send", message
            decoded = json.loads(message["text"])
            if decoded["type"] != "heartbeat":
                return decoded

    def closed_with(self) -> int:
        """The close code the server sends next (messages before it are skipped)."""
        while True:
            message = self.sent.get(timeout=WAIT_S)
            if message["type"] == "websocket.close":
                return message.get("code", 1000)
            assert message["type"] == "websocket.send", message

    def leave(self) -> None:
        self._loop.call_soon_threadsafe(
            self._inbox.put_nowait, {"type": "websocket.disconnect", "code": 1000}
        )
        self._thread.join(WAIT_S)
        assert not self._thread.is_alive(), "the WebSocket did not end when its client left"


def set_snapshot(bus: InProcessBus, symbols: list[str]) -> None:
    """The latest snapshot on the bus, as the engine sets it (a real document of these coins)."""
    view = SnapshotView.build(
        parse_listings(listings(*[(n, s, n, float(n), 0.5) for n, s in enumerate(symbols, 1)]))
    )
    bus.set_latest(SNAPSHOT, SnapshotDocument(view.etag, view.body, 1, 1_767_225_600_000))


@pytest.fixture
def bus() -> InProcessBus:
    return InProcessBus(maxlen=4)


@pytest.fixture
def app(canned: Canned, bus: InProcessBus) -> Iterator[Any]:
    hub = hub_on(bus, capacity=4)
    gateway: Gateway = canned.gateway
    gateway.snapshots = LatestSnapshot(bus)
    yield create_app(gateway, hub=hub, max_streams=2, heartbeat_s=30)
    hub.close()


def test_events_arrive_as_json_with_the_streams_ids_and_privacy(app, bus) -> None:
    hub = _hub(app)
    anonymous, alice = WsClient(app), WsClient(app, headers=ALICE)
    for client in (anonymous, alice):
        assert client.accepted
        hello = client.next()
        assert hello["type"] == "hello" and hello["last_id"] == str(hub.last_id)
    publish(hub, "alert", {"for": 8}, user_id=8)
    mine = publish(hub, "alert", {"for": 7}, user_id=7)
    tick = publish(hub, "snapshot", {"tick": 1})
    assert anonymous.next() == {"type": "event", "id": str(tick), "event": "snapshot", "data": {"tick": 1}}
    assert alice.next() == {"type": "event", "id": str(mine), "event": "alert", "data": {"for": 7}}
    assert alice.next()["id"] == str(tick)
    anonymous.leave()
    alice.leave()


def _hub(app: Any) -> Any:
    resource, _, _, _ = app._router.find("/v1/ws")
    return resource.stream.hub


def test_resume_by_event_id_and_a_reset_for_an_unknown_one(app) -> None:
    hub = _hub(app)
    ids = [publish(hub, "snapshot", {"n": n}) for n in range(3)]
    client = WsClient(app, query=f"last_event_id={ids[0]}")
    assert client.next() == {"type": "hello", "last_id": None}
    assert [client.next()["id"] for _ in range(2)] == [str(i) for i in ids[1:]]
    client.leave()
    lost = WsClient(app, headers={"Last-Event-ID": "1-0"})
    lost.next()
    reset = lost.next()
    assert reset["event"] == "reset" and reset["data"] == {
        "last_id": str(ids[-1]),
        "refetch": ["/v1/snapshot"],
    }
    lost.leave()


def test_a_subscription_gets_its_symbols_at_once_and_after_each_snapshot_event(app, bus) -> None:
    hub = _hub(app)
    set_snapshot(bus, ["BTC", "ETH", "SOL"])
    client = WsClient(app)
    client.next()
    client.say({"subscribe": ["btc", "SOL", "BTC"]})
    assert client.next() == {"type": "subscribed", "symbols": ["BTC", "SOL"]}
    quotes = client.next()
    assert quotes["type"] == "quotes"
    assert [coin["symbol"] for coin in quotes["data"]["coins"]] == ["BTC", "SOL"]
    set_snapshot(bus, ["BTC", "ETH", "SOL", "DOGE"])
    tick = publish(hub, "snapshot", {"tick": 2})
    assert client.next()["id"] == str(tick)
    again = client.next()
    assert again["type"] == "quotes" and [c["symbol"] for c in again["data"]["coins"]] == ["BTC", "SOL"]
    client.say({"subscribe": []})
    assert client.next() == {"type": "subscribed", "symbols": []}
    publish(hub, "snapshot", {"tick": 3})
    assert client.next()["type"] == "event"  # and no quotes after it
    publish(hub, "snapshot", {"tick": 4})
    assert client.next()["type"] == "event"
    client.leave()


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("not json", "not valid JSON"),
        ({"subscribe": "BTC"}, "subscribe: Expected array, got str"),
        ({"subscribe": ["X" * 21]}, "subscribe[0]"),
        ({"subscribe": ["BTC"] * 101}, "at most 100"),
        ({"symbols": ["BTC"]}, "unknown field"),
        ("x" * 5000, "at most 4096 bytes"),
    ],
)
def test_a_message_the_server_cannot_take_gets_an_error_and_the_connection_stays(app, message, says) -> None:
    client = WsClient(app)
    client.next()
    client.say(message)
    answer = client.next()
    assert answer["type"] == "error" and says in answer["description"], answer
    client.say({"subscribe": []})
    assert client.next()["type"] == "subscribed"
    client.leave()


def test_the_same_caps_as_the_stream_counted_together(app) -> None:
    first = WsClient(app, addr="192.0.2.1")
    assert first.accepted
    stream_client = TestClient(app)
    second = WsClient(app, addr="192.0.2.2")
    assert second.accepted
    over = WsClient(app, addr="192.0.2.3")
    assert not over.accepted and over.close_code == 3503  # both slots taken: 3000 + 503
    assert_error(stream_client.simulate_get("/v1/stream", remote_addr="192.0.2.4"), 503)
    first.leave()
    third = WsClient(app, addr="192.0.2.3")
    assert third.accepted  # the slot of the client that left
    for client in (second, third):
        client.leave()


def test_authentication_as_the_stream_and_a_revoked_token_closes_at_the_heartbeat(
    canned, monkeypatch
) -> None:
    hub = hub_on()
    app = create_app(canned.gateway, hub=hub, heartbeat_s=0.001)
    refused = WsClient(app, query="access_token=nope")
    assert not refused.accepted and refused.close_code == 3401
    alice = WsClient(app, query="access_token=token-of-7")
    assert alice.accepted
    alice.next()
    monkeypatch.delitem(TOKENS, "token-of-7")
    assert alice.closed_with() == 3401
    hub.close()


def test_a_stopping_server_closes_every_websocket(app) -> None:
    client = WsClient(app)
    client.next()
    _hub(app).close()
    assert client.closed_with() == 1001  # going away


def test_a_plain_get_is_told_to_upgrade(app) -> None:
    answer = TestClient(app).simulate_get("/v1/ws")
    assert assert_error(answer, 426)["title"] == "Upgrade required"
    assert answer.headers["upgrade"] == "websocket"
