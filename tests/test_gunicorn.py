"""Through the real gunicorn: requests it refuses before the app sees them come back in uBot's JSON
error shape, and gzipped answers (``ubot/http/compress.py``) reach the client intact.

A real gunicorn (``GatewayServer``, uBot's worker class) in a subprocess, on a free port, spoken to
over a real socket with raw bytes: what a browser, curl or a fuzzer can send.
"""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.processes import environment
from ubot.http.server import LIMIT_REQUEST_FIELD_SIZE, LIMIT_REQUEST_FIELDS, LIMIT_REQUEST_LINE

REPO = Path(__file__).resolve().parents[1]
SERVER = """
import sys
from ubot.http.asgi import App
from ubot.http.compress import Compression
from ubot.http.server import GatewayServer

class Hello:
    def on_get(self, req, resp):
        resp.media = {"hello": "world"}

class Big:
    def on_get(self, req, resp):
        resp.media = {"rows": list(range(5000))}

def make_app():
    app = App(middleware=[Compression()])  # uBot's ASGI app takes the sync middleware and resources
    app.add_route("/hello", Hello())
    app.add_route("/big", Big())
    return app

GatewayServer(("127.0.0.1", int(sys.argv[1])), 2, make_app, lambda: None, "info").run()
"""
DEADLINE_S = 20


@pytest.fixture(scope="module")
def port(tmp_path_factory) -> Iterator[int]:
    chosen = free_port()
    home = tmp_path_factory.mktemp("home")
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(chosen)],
        cwd=REPO,
        env=environment(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # gunicorn logs this once the worker runs (the master listens before it forks).
        for line in server.stderr:  # type: ignore[union-attr]
            if b"Booting worker" in line:
                break
        else:
            pytest.fail(f"gunicorn exited {server.wait()} before serving")
        yield chosen
    finally:
        server.terminate()
        server.wait(timeout=DEADLINE_S)
        server.stderr.close()  # type: ignore[union-attr]


def exchange(port: int, request: bytes) -> bytes:
    """Send ``request``, read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as connection:
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def answer(port: int, request: bytes) -> tuple[int, dict[str, str], dict]:
    raw = exchange(port, request)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in header_lines)}
    assert headers["content-type"] == "application/json", raw
    assert int(headers["content-length"]) == len(body)
    document = json.loads(body)
    assert set(document) == {"title", "description"}
    assert document["title"] == status_line.removeprefix("HTTP/1.1 ")
    return int(status_line.split()[1]), headers, document


def test_the_app_answers_as_usual(port) -> None:
    raw = exchange(port, b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.endswith(b'{"hello": "world"}')


def test_a_5_kb_request_line_is_414_json(port) -> None:
    status, headers, document = answer(port, b"GET /hello?q=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert status == 414
    assert document == {
        "title": "414 URI Too Long",
        "description": f"The request line (method, path and query) is longer than {LIMIT_REQUEST_LINE} bytes.",
    }
    assert headers["connection"] == "close"


def test_a_request_line_at_the_limit_reaches_the_app(port) -> None:
    line = b"GET /hello?q= HTTP/1.1"
    padded = line.replace(b"?q=", b"?q=" + b"a" * (LIMIT_REQUEST_LINE - len(line)))
    assert len(padded) == LIMIT_REQUEST_LINE
    raw = exchange(port, padded + b"\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_malformed_request_line_is_400_json(port) -> None:
    status, _, document = answer(port, b"THIS IS NOT HTTP\r\n\r\n")
    assert status == 400
    assert document["title"] == "400 Bad Request"
    assert document["description"].startswith("Malformed request: ")


def test_a_malformed_header_is_400_json(port) -> None:
    status, _, document = answer(port, b"GET /hello HTTP/1.1\r\nHost: t\r\nBad Header Name: x\r\n\r\n")
    assert status == 400
    assert document["description"].startswith("Malformed request: ")


@pytest.mark.parametrize(
    "headers",
    [
        b"".join(b"X-H%d: v\r\n" % n for n in range(LIMIT_REQUEST_FIELDS + 1)),
        b"X-Big: " + b"v" * (LIMIT_REQUEST_FIELD_SIZE + 1) + b"\r\n",
    ],
    ids=["too many", "too large"],
)
def test_too_many_or_too_large_headers_are_431_json(port, headers) -> None:
    status, _, document = answer(port, b"GET /hello HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
    assert status == 431
    assert document == {
        "title": "431 Request Header Fields Too Large",
        "description": f"The request has more than {LIMIT_REQUEST_FIELDS} header fields, or one longer "
        f"than {LIMIT_REQUEST_FIELD_SIZE} bytes.",
    }


def test_a_gzipped_answer_through_gunicorn(port) -> None:
    raw = exchange(
        port, b"GET /big HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, value in (line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    }
    assert headers[b"content-encoding"] == b"gzip"
    assert headers[b"vary"] == b"Accept-Encoding"
    assert int(headers[b"content-length"]) == len(body)
    assert json.loads(gzip.decompress(body)) == {"rows": list(range(5000))}
