"""Whether the client of a long response has left, asked of its socket without reading from it.

An event stream writes only when there is something to say (an event, a heartbeat every
``[http] stream_heartbeat`` seconds), and a write to a socket whose peer has gone fails only on the
write after that. So a stream that waited for its next write to fail kept its slot for up to two
intervals after its client left. Instead the stream asks the socket, every
:data:`~ubot.http.stream.DEPARTURE_CHECK_S`: once the client has closed (FIN: ``POLLRDHUP``) or reset
(``POLLHUP``/``POLLERR``) its end, it has left. Nothing is sent and nothing is read (a byte the
client might send stays where it is). An SSE client sends nothing after its request, so a client
that shuts down its sending side has left too (as Go's HTTP server also judges it).

The socket is the one gunicorn puts in the WSGI environ (``gunicorn.socket``); without one (a test
calling the app directly) the answer is always "still there", and the stream ends when the server
closes its body, as before.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable, Mapping
from typing import Any

_POLLRDHUP = getattr(select, "POLLRDHUP", 0)  # Linux: the peer closed its end (or shut it down)
_GONE = _POLLRDHUP | select.POLLHUP | select.POLLERR | select.POLLNVAL


def has_left(sock: socket.socket) -> bool:
    """Whether the peer of ``sock`` has closed, shut down or reset its end (never blocks)."""
    try:
        fd = sock.fileno()
    except (OSError, ValueError):
        return True
    if fd < 0:  # closed on our side
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | _GONE)
    ready = poller.poll(0)
    if not ready:
        return False
    mask = ready[0][1]
    if mask & _GONE:
        return True
    if _POLLRDHUP:  # readable without RDHUP: the client sent bytes and is still there
        return False
    try:  # elsewhere: end of file is an empty read; peeking leaves any byte where it is
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError, ValueError):  # ValueError: TLS sockets cannot peek
        return False
    except OSError:
        return True


def departure(environ: Mapping[str, Any]) -> Callable[[], bool]:
    """For a WSGI request: a function saying whether its client has left."""
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        return _never
    return lambda: has_left(sock)


def _never() -> bool:
    return False
