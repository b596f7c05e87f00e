"""End to end: GET /v1/stream through the real gunicorn gthread worker, read as it arrives.

The test starts this very module as a subprocess (``python -m tests.test_stream_e2e PORT HEARTBEAT
PER_ADDRESS``): a
:class:`GatewayServer` serving ``create_app`` with a :class:`StreamHub`, over stand-in actors, plus
one test-only route, ``POST /test/publish``, through which the test publishes into the hub. Each
step waits for what the server sends, so nothing depends on timing.
"""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.ports import free_port
from tests.support.processes import REPO, environment, launch
from tests.support.waits import wait_until
from ubot.bus import EntryId

TIMEOUT_S = 20  # each wait; below gunicorn's 30 s graceful timeout, so a stuck stop fails the test
MAX_STREAMS = 2
UNCAPPED = 255  # per address: the server's cap binds first (every client here is 127.0.0.1)
TOKEN = "e2e-token"
USER_ID = 7


# --- the server (runs in the subprocess) ------------------------------------------------------


def serve(port: int, heartbeat_s: float, per_address: int) -> None:
    import falcon

    from tests.http.support import CannedActor, CannedUsers
    from ubot.bus import InProcessBus
    from ubot.http.app import create_app
    from ubot.http.gateway import Gateway
    from ubot.http.server import GatewayServer
    from ubot.stream.hub import StreamHub
    from ubot.stream.publisher import EventPublisher

    state: dict = {}

    class Publish:
        def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
            body = req.get_media()
            entry_id = state["publisher"].publish(body["event"], body["data"], body.get("user_id"))
            resp.media = {"id": str(entry_id)}

    def make_app() -> falcon.App:
        state["actors"] = actors = [
            CannedActor.start(lambda message: None),
            CannedUsers.start({TOKEN: USER_ID}),
        ]
        bus = InProcessBus()
        state["hub"] = hub = StreamHub(bus).start()
        state["publisher"] = EventPublisher(bus)
        gateway = Gateway(
            container=actors[0], history=actors[0], monitor=actors[0], clock=actors[0], users=actors[1]
        )
        app = create_app(
            gateway,
            hub=hub,
            max_streams=MAX_STREAMS,
            max_streams_per_address=per_address,
            heartbeat_s=heartbeat_s,
        )
        app.add_route("/test/publish", Publish())
        return app

    def on_exit() -> None:
        state["hub"].close()
        for ref in state["actors"]:
            ref.stop()
        print("e2e server stopped", flush=True)

    GatewayServer(
        ("127.0.0.1", port), 4, make_app, on_exit, "info", on_stopping=lambda: state["hub"].close()
    ).run()


# --- the test side -----------------------------------------------------------------------------


class EventReader:
    """Complete SSE messages of a streamed response, each as a dict of its fields (``:`` for a
    comment), read from the chunks as gunicorn sends them."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self._chunks = response.iter_content(chunk_size=None)
        self._buffer = b""

    def next(self) -> dict[str, str] | None:
        """The next message, or None at the end of the stream."""
        while b"\n\n" not in self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return None
            self._buffer += chunk
        block, self._buffer = self._buffer.split(b"\n\n", 1)
        message: dict[str, str] = {}
        for line in block.decode().split("\n"):
            name, _, value = line.partition(":")
            message[name or ":"] = value.removeprefix(" ")
        return message

    def next_event(self) -> dict[str, str]:
        """The next message that is an event (heartbeats skipped)."""
        while True:
            message = self.next()
            assert message is not None, "the stream ended"
            if "event" in message:
                return message

    def close(self) -> None:
        self.response.close()


@dataclass
class Server:
    proc: subprocess.Popen
    base: str
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def publish(self, event: str, data: dict, user_id: int | None = None) -> EntryId:
        body = {"event": event, "data": data, "user_id": user_id}
        response = requests.post(self.base + "/test/publish", json=body, timeout=TIMEOUT_S)
        assert response.status_code == 200, response.text
        return EntryId.parse(response.json()["id"])

    def stream(self, headers: dict[str, str] | None = None, **params: str) -> EventReader:
        """Open a stream. A stream a client just closed keeps its slot until the server notices
        (its next heartbeat fails to write): while all are taken, try again, as the 503 says."""

        def opened() -> tuple[requests.Response] | None:  # (an error response is falsy)
            response = requests.get(
                self.base + "/v1/stream", params=params, headers=headers, stream=True, timeout=TIMEOUT_S
            )
            if response.status_code == 503:
                response.close()
                return None
            return (response,)

        (response,) = wait_until(opened, "a free stream slot", TIMEOUT_S, interval=0.01)
        assert response.status_code == 200, response.text
        return EventReader(response)


def start(tmp_path: Path, heartbeat_s: float, per_address: int) -> Server:
    port = free_port()
    tmp_path.mkdir(exist_ok=True)
    log_path = tmp_path / "server.log"
    args = [sys.executable, "-m", "tests.test_stream_e2e", str(port), str(heartbeat_s), str(per_address)]
    proc = launch(args, log_path, cwd=REPO, env=environment(tmp_path)).proc
    server = Server(proc, f"http://127.0.0.1:{port}", log_path)
    # until the worker answers (503: no snapshot, there are no real actors)
    wait_until(
        lambda: requests.get(server.base + "/v1/snapshot", timeout=TIMEOUT_S).status_code,
        "the server to answer",
        TIMEOUT_S,
        alive=server,
        ignoring=(requests.ConnectionError,),
        interval=0.02,
    )
    return server


@pytest.fixture
def servers(tmp_path) -> Iterator[Callable[..., Server]]:
    """Start a server with this heartbeat interval (and this many streams per address); killed at
    the end if still running."""
    started: list[Server] = []

    def make(heartbeat_s: float, per_address: int = UNCAPPED) -> Server:
        started.append(start(tmp_path / str(len(started)), heartbeat_s, per_address))
        return started[-1]

    yield make
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


def test_events_arrive_in_order_resume_and_stay_private(servers) -> None:
    server = servers(0.05)
    anonymous = server.stream()
    head = anonymous.next()
    assert head["retry"] == "3000"
    start = EntryId.parse(head["id"])
    assert anonymous.response.headers["content-type"] == "text/event-stream"
    assert anonymous.response.headers["cache-control"] == "no-cache"
    assert anonymous.response.headers["x-accel-buffering"] == "no"

    ids = [server.publish("snapshot", {"tick": n}) for n in range(3)]
    assert ids[0] > start and ids == sorted(ids)
    for n, event_id in enumerate(ids):
        assert anonymous.next_event() == {"id": str(event_id), "event": "snapshot", "data": f'{{"tick":{n}}}'}

    # An authenticated client (token in the URL, as EventSource must) gets its own alerts too.
    alice = server.stream(access_token=TOKEN, last_event_id=str(ids[-1]))
    alice.next()
    server.publish("alert", {"for": 8}, user_id=8)
    alert = server.publish("alert", {"for": USER_ID}, user_id=USER_ID)
    tick = server.publish("snapshot", {"tick": 3})
    assert (alice.next_event()["id"], alice.next_event()["id"]) == (str(alert), str(tick))
    assert anonymous.next_event()["id"] == str(tick)  # no alert in between
    alice.close()

    # Reconnecting with Last-Event-ID resumes right after it.
    anonymous.close()
    resumed = server.stream(headers={"Last-Event-ID": str(ids[0])})
    assert resumed.next() == {"retry": "3000"}
    assert [resumed.next_event()["id"] for _ in range(3)] == [str(ids[1]), str(ids[2]), str(tick)]
    resumed.close()


def test_heartbeats_the_stream_limit_and_other_requests_still_served(servers) -> None:
    server = servers(0.05)
    streams = [server.stream() for _ in range(MAX_STREAMS)]
    for stream in streams:
        stream.next()
        assert stream.next() == {":": "heartbeat"}
    over = requests.get(server.base + "/v1/stream", timeout=TIMEOUT_S)
    assert over.status_code == 503
    assert over.headers["retry-after"] == "10"
    assert over.json()["title"] == "Too many streams"
    # The other threads still serve the rest of the API.
    assert requests.get(server.base + "/v1/snapshot", timeout=TIMEOUT_S).status_code == 503
    for stream in streams:
        stream.close()


def test_sigterm_ends_open_streams_and_stops_promptly(servers) -> None:
    # No heartbeat in the time of the test: the stream ends only if the stop ends it (and not
    # gunicorn's graceful timeout of 30 s: reading it would time out after TIMEOUT_S first).
    server = servers(3600)
    stream = server.stream(headers={"Connection": "close"})  # nothing for the worker to linger on
    stream.next()
    event_id = server.publish("snapshot", {"tick": 1})
    assert stream.next_event()["id"] == str(event_id)
    server.proc.send_signal(signal.SIGTERM)
    assert stream.next() is None  # the end of the stream
    assert server.proc.wait(timeout=TIMEOUT_S) == 0
    log = server.log
    assert "Traceback" not in log
    assert "e2e server stopped" in log


class RawStream:
    """A stream read from a bare socket, as a client that can leave abruptly (no HTTP library);
    ``forwarded``: its ``X-Forwarded-For`` (a server behind a trusted proxy takes it as the address).
    ``server``: anything with a ``base`` URL."""

    def __init__(self, server: Any, forwarded: str | None = None) -> None:
        host, port = server.base.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=TIMEOUT_S)
        extra = "" if forwarded is None else f"X-Forwarded-For: {forwarded}\r\n"
        self.sock.sendall(f"GET /v1/stream HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
        self.received = b""

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.received:
            chunk = self.sock.recv(65536)
            assert chunk, f"the stream ended before {marker!r}: {self.received!r}"
            self.received += chunk
        return self.received

    def status(self) -> int:
        return int(self.read_until(b"\r\n\r\n").split(b" ", 2)[1])

    def leave(self, how: str = "close") -> None:
        if how == "reset":  # RST instead of FIN: as a client that crashed or lost its network
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def stream_status(server: Server) -> int:
    response = requests.get(server.base + "/v1/stream", stream=True, timeout=TIMEOUT_S)
    response.close()
    return response.status_code


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_slot_is_free_within_a_second_of_its_client_leaving(servers, how) -> None:
    # No heartbeat for an hour: the slot is freed because the server saw the client leave, not
    # because a write failed.
    server = servers(3600, per_address=1)
    client = RawStream(server)
    assert client.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 200 OK")
    client.read_until(b"\n\n" + b"\r\n")  # the head (retry, id), one chunk
    event_id = server.publish("snapshot", {"tick": 1})
    client.read_until(f"id: {event_id}\nevent: snapshot".encode())  # the first event
    assert stream_status(server) == 429  # the address's one slot is taken
    client.leave(how)
    # The liveness bound: a departure check is 0.5 s; 2 s leaves room for a loaded machine.
    wait_until(lambda: stream_status(server) == 200, "the slot to be free", 2, alive=server)
    assert "Traceback" not in server.log


if __name__ == "__main__":
    serve(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))
