"""The attempt deadline without a channel: what cutting does to a socket (a blocked read returns at
once, TLS or not, since the socket is shut down through a duplicate of its descriptor), the bounds it
puts on timeouts (time injected), scopes (a stop) and calls that no socket shutdown can end.

A cut is made by calling :meth:`Deadline.cut`, except in the one test of the watchdog thread, which
necessarily waits for a real (short) deadline."""

from __future__ import annotations

import socket
import threading

import pytest

from ubot.notify.deadline import (
    DEADLINE,
    STOPPING,
    Deadline,
    Scope,
    Watchdog,
    attempt,
    current,
    describe,
    within,
)

WAIT = 10.0


def blocked_read(sock: socket.socket) -> tuple[threading.Thread, list[bytes]]:
    """A thread blocked in ``recv`` on ``sock`` (bounded by WAIT), and what it read."""
    sock.settimeout(WAIT)
    got: list[bytes] = []
    thread = threading.Thread(target=lambda: got.append(sock.recv(10)), daemon=True)
    thread.start()
    return thread, got


def test_cutting_shuts_the_watched_socket_down_and_a_blocked_read_returns() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        deadline = Deadline(60)
        deadline.watch(ours)
        reader, got = blocked_read(ours)

        deadline.cut()

        reader.join(WAIT)
        assert got == [b""]  # end of stream, long before the 10 s read timeout
        assert (deadline.expired, deadline.cut_reason) == (True, DEADLINE)
        deadline.close()


def test_a_socket_watched_after_the_cut_is_shut_down_at_once() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        deadline = Deadline(60)
        deadline.cut(STOPPING)
        deadline.watch(ours)
        ours.settimeout(WAIT)
        assert ours.recv(10) == b""
        assert deadline.cut_reason == STOPPING


def test_a_closed_deadline_no_longer_touches_the_socket() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        deadline = Deadline(60)
        deadline.watch(ours)
        deadline.close()
        deadline.cut()
        theirs.sendall(b"still here")
        ours.settimeout(WAIT)
        assert ours.recv(10) == b"still here"
        assert not deadline.expired


def test_timeouts_are_bounded_by_what_is_left() -> None:
    now = [1000.0]
    deadline = Deadline(10, clock=lambda: now[0])
    assert deadline.bound(30) == 10
    assert deadline.bound(None) == 10  # no timeout given: the deadline is one
    now[0] = 1006.0
    assert (deadline.bound(30), deadline.bound(2)) == (4, 2)
    now[0] = 1011.0
    assert deadline.remaining() == 0
    assert deadline.bound(30) > 0  # never 0, which would make a socket non-blocking


def test_the_watchdog_cuts_at_the_deadline() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        deadline = Watchdog().open(0.3)
        deadline.watch(ours)
        reader, got = blocked_read(ours)
        reader.join(WAIT)
        assert got == [b""]
        assert deadline.cut_reason == DEADLINE
        assert "within 0.3 s" in describe(deadline)


def test_an_attempt_is_current_in_its_thread_and_joins_an_outer_one() -> None:
    assert current() is None
    with attempt(60) as outer:
        assert current() is outer
        with attempt(5) as inner:
            assert inner is outer  # the outer attempt's deadline governs
    assert current() is None


def test_cutting_a_scope_cuts_its_attempts_and_those_opened_later() -> None:
    scope = Scope()
    with scope.entered():
        with attempt(60) as first:
            scope.cut()
            assert first.cut_reason == STOPPING
        with attempt(60) as later:
            assert later.cut_reason == STOPPING
    assert "uBot is stopping" in describe(later)
    with attempt(60) as outside:  # not in the scope
        assert not outside.expired


def test_within_gives_a_blocking_call_up_at_the_deadline() -> None:
    release = threading.Event()
    try:
        with attempt(0.3) as deadline, pytest.raises(TimeoutError):
            within(release.wait, WAIT)
        assert deadline.cut_reason == DEADLINE
    finally:
        release.set()


def test_within_gives_the_result_or_the_error_of_a_call_in_time() -> None:
    with attempt(60):
        assert within(sum, (1, 2, 3)) == 6
        with pytest.raises(ZeroDivisionError):
            within(divmod, 1, 0)
    assert within(sum, (1, 2)) == 3  # outside an attempt: called as is


def test_within_ends_when_the_scope_is_cut() -> None:
    release = threading.Event()
    scope = Scope()
    try:
        with scope.entered(), attempt(60) as deadline:
            threading.Timer(0, scope.cut).start()  # another thread stops, as a stop does
            with pytest.raises(TimeoutError):
                within(release.wait, WAIT)
            assert deadline.cut_reason == STOPPING
    finally:
        release.set()
