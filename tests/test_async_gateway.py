"""The gateway on gunicorn's ASGI worker, through ``python run.py``: clients that never finish their
request, and many open streams, do not keep anyone else from being served.

Loopback only, bounded counts. Nothing here measures time: every wait is for an answer, with a
generous timeout that only fails a test that hangs (``bench/scale.py`` measures).
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator

import pytest
import requests

from tests.procs import Ubot, start
from tests.support.waits import wait_until
from tests.test_stream_e2e import RawStream

HALF_OPEN = 500
STREAMS = 200
TIMEOUT_S = 30  # each wait; far beyond the request deadline below
REQUEST_TIMEOUT_S = 5


@pytest.fixture
def ubot(tmp_path) -> Iterator[Ubot]:
    env = {
        "UBOT_HTTP_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT_S),
        "UBOT_HTTP_STREAM_MAX": str(STREAMS),
        "UBOT_HTTP_TRUSTED_PROXIES": "127.0.0.1",  # each stream's address is its X-Forwarded-For
        "UBOT_LIMITS_ENABLED": "false",  # this test is one client address sending many requests
    }
    started = start(tmp_path, "--source", "simulated", "--limit", "20", "--interval", "1", env=env, http=True)
    try:
        wait_until(
            lambda: requests.get(started.base + "/v1/snapshot", timeout=TIMEOUT_S).status_code == 200,
            "the first snapshot",
            TIMEOUT_S,
            alive=started,
            ignoring=(requests.ConnectionError,),
        )
        yield started
        assert started.stop(signal.SIGTERM) == 0, started.tail()
        assert "Traceback" not in started.log, started.log
    finally:
        started.close()


def address(ubot: Ubot) -> tuple[str, int]:
    host, port = ubot.base.removeprefix("http://").split(":")
    return host, int(port)


def read_to_end(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_half_open_sockets_hold_nothing_and_are_closed_at_the_deadline(ubot) -> None:
    sockets = []
    try:
        for _ in range(HALF_OPEN):
            sock = socket.create_connection(address(ubot), timeout=TIMEOUT_S)
            sock.sendall(b"G")  # a request begun, never finished
            sockets.append(sock)
        # Everyone else is still served, the probes included (under gthread, 8 of these hung all).
        for _ in range(10):
            assert requests.get(ubot.base + "/health", timeout=TIMEOUT_S).status_code == 200
            snapshot = requests.get(ubot.base + "/v1/snapshot", timeout=TIMEOUT_S)
            assert snapshot.status_code == 200 and snapshot.json()["coins"]
        # Each half-open socket gets its 408 at the deadline, then the server closes it.
        for sock in sockets:
            answer = read_to_end(sock)
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
            assert f"was not complete within {REQUEST_TIMEOUT_S} s".encode() in answer, answer
    finally:
        for sock in sockets:
            sock.close()
    assert requests.get(ubot.base + "/health", timeout=TIMEOUT_S).status_code == 200


def forwarded(n: int) -> str:
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


def test_many_open_streams_get_every_snapshot_while_other_requests_are_served(ubot) -> None:
    streams = [RawStream(ubot, forwarded(n)) for n in range(STREAMS)]
    try:
        for stream in streams:
            assert stream.status() == 200
            stream.read_until(b"retry: ")
        # Every slot is taken: one more is refused, as configured ([http] stream_max).
        over = requests.get(
            ubot.base + "/v1/stream", headers={"X-Forwarded-For": forwarded(STREAMS)}, timeout=TIMEOUT_S
        )
        assert over.status_code == 503 and over.json()["title"] == "Too many streams"
        # The rest of the API answers meanwhile.
        for _ in range(10):
            assert requests.get(ubot.base + "/v1/snapshot", timeout=TIMEOUT_S).status_code == 200
            assert requests.get(ubot.base + "/health", timeout=TIMEOUT_S).status_code == 200
        # Each stream gets the next tick's snapshot event.
        for stream in streams:
            stream.read_until(b"event: snapshot\n")
        # Half of the clients leave: their slots are free for others.
        for stream in streams[: STREAMS // 2]:
            stream.leave()

        def reopened() -> list[RawStream] | None:
            fresh = [RawStream(ubot, forwarded(STREAMS + 1 + n)) for n in range(STREAMS // 2)]
            if all(stream.status() == 200 for stream in fresh):
                return fresh
            for stream in fresh:
                stream.leave()
            return None

        streams[: STREAMS // 2] = wait_until(reopened, "the slots of the clients that left", TIMEOUT_S)
    finally:
        for stream in streams:
            stream.leave()
