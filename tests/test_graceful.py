"""Graceful stop (issue 6): SIGTERM finishes the tick in flight, flushes (the snapshot stored, its
candles saved, its alerts written), closes connections and exits 0 within a bounded time.

tests/test_run.py already checks SIGTERM/SIGINT headless during the first tick (exit 0, every logged
tick stored) and tests/test_e2e.py SIGTERM/SIGINT of an idle server. These add what a tick in flight
must leave behind, in both modes: the signal is sent while a tick is held in the Store, a moment
the test makes rather than races for (tests/procs.py ``store_held``): the tick's replay file is a
FIFO that uBot waits on until the earlier ticks are scanned; then the test takes the database's
write lock (PostgreSQL: locks the Store's last table, and sees the snapshot transaction wait there)
and lets the tick go on; it releases the lock once uBot has taken the signal, so the tick is truly
in flight. And a stop while four webhook receivers drip (issue 12): at once, and their deliveries
stay pending.

The bound (30 s, :data:`tests.procs.TIMEOUT_S`; 3 s with the receivers, the documented stop bound)
is a liveness bound, not a performance figure; the observed stop times are printed (``pytest -s``).
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import threading
import time

import pytest
import requests

from tests.fakes.webhook import Drip, FakeWebhook
from tests.procs import (
    TIMEOUT_S,
    Market,
    assert_candles_match_quotes,
    assert_snapshots_whole,
    gated_replay,
    last_snapshot,
    pg_backends,
    replay,
    shared_market,
    sqlite_path,
    start,
    store_held,
    tagged,
    watermark,
)
from tests.support.destinations import verify
from tests.support.waits import wait_until
from tests.test_crash import PASSWORD, SECRET, alerted_bars, deliveries, sign_up
from ubot.clocks import SystemClock
from ubot.models.alerts import SCAN_WATERMARK
from ubot.models.tables import Delivery, SnapshotRecord
from ubot.models.users import UserStore
from ubot.users.manager import UserManager


@pytest.fixture(scope="session")
def market(tmp_path_factory) -> Market:
    return shared_market(tmp_path_factory)


#: The replay file held at the gate (0-based): the tick of snapshot 4, after three whole ones.
GATED = 3


def scans_done(strategy_id: int):
    """Every stored snapshot scanned and its alert written: then the Store of the gated tick is all
    that is left in flight (the Notifier writes too, while the next tick runs)."""

    def done() -> bool:
        last = last_snapshot()
        if watermark(SCAN_WATERMARK) < last:
            return False
        return SnapshotRecord.get_by_id(last).timestamp in alerted_bars(strategy_id)

    return done


def assert_flushed(strategy_id: int) -> list[int]:
    """What a stop must leave: every stored snapshot whole, folded into the candles, scanned and its
    alert written (the strategy fires on every bar). Returns the stored snapshot times."""
    assert_snapshots_whole()
    assert watermark() == last_snapshot()
    assert_candles_match_quotes()
    stored = [
        t for (t,) in SnapshotRecord.select(SnapshotRecord.timestamp).order_by(SnapshotRecord.id).tuples()
    ]
    # Scanned and alerted: the last snapshot (a tick arriving mid-scan may be dropped under load, by
    # design, but never the newest), and none twice.
    bars = alerted_bars(strategy_id)
    assert stored[-1] in bars and len(bars) == len(set(bars)) and set(bars) <= set(stored)
    return stored


def assert_closed(db, database_url: str, tag: str) -> None:
    """Every connection of uBot closed. SQLite deletes the write-ahead log when its last connection
    closes (the test's own was closed before the stop), so a WAL file left behind means uBot exited
    with a connection open; on PostgreSQL no backend of uBot's is left."""
    path = sqlite_path(database_url)
    if path is not None:
        assert not os.path.exists(path + "-wal"), (
            "uBot left the SQLite database open (its WAL is still there)"
        )
    else:
        wait_until(lambda: pg_backends(tag) == 0, "uBot's PostgreSQL connections to go")


def test_sigterm_headless_during_a_store_finishes_the_tick_and_exits_0(
    tmp_path, db, database_url, market
) -> None:
    url, tag = tagged(database_url)
    strategy_id = sign_up(db, None)
    gated, gate = gated_replay(tmp_path, market, GATED)
    ubot = replay(tmp_path, gated, url)
    try:
        with store_held(ubot, database_url, tag, gate, ready=scans_done(strategy_id)) as seen:
            db.close()  # before uBot goes on: see assert_closed
            signalled = time.monotonic()
            ubot.proc.send_signal(signal.SIGTERM)
            wait_until(lambda: "received SIGTERM" in ubot.log, "uBot to take the SIGTERM", alive=ubot)
        code = ubot.wait_exit(started=signalled)  # the Store goes on once the lock is released
    finally:
        ubot.close()
    report("headless, a store in flight", ubot.stopped_in_s)
    assert code == 0, ubot.tail()
    assert ubot.stopped_in_s < TIMEOUT_S
    log = ubot.log
    assert "received SIGTERM" in log and log.rstrip().endswith(": stopped"), ubot.tail()
    assert "Traceback" not in log, log
    assert_closed(db, database_url, tag)
    stored = assert_flushed(strategy_id)
    # The tick in flight was finished (stored whole, candled, scanned) and every tick begun was ended.
    assert len(stored) >= seen.last_snapshot + 1
    assert len(stored) == len(re.findall(r"monitor[^:]*: tick \d+ coins=", log))


def test_sigterm_to_the_server_during_a_store_ends_streams_flushes_and_exits_0(
    tmp_path, db, database_url, market
) -> None:
    """gunicorn: SIGTERM to the master, which stops its worker gracefully; an open event stream and a
    keep-alive connection are ended by the server, the pipeline is stopped in order."""
    url, tag = tagged(database_url)
    strategy_id = sign_up(db, None)
    gated, gate = gated_replay(tmp_path, market, GATED)
    ubot = replay(tmp_path, gated, url, http=True)
    ended = threading.Event()
    try:
        ubot.wait_worker(1)
        wait_until(lambda: last_snapshot() >= 1, "a first snapshot", alive=ubot)
        stream = requests.get(ubot.base + "/v1/stream", stream=True, timeout=TIMEOUT_S)
        assert stream.status_code == 200

        def read() -> None:
            for _ in stream.iter_lines():
                pass
            ended.set()

        threading.Thread(target=read, daemon=True).start()
        keep_alive = requests.Session()
        assert keep_alive.get(ubot.base + "/health", timeout=TIMEOUT_S).status_code in (200, 503)

        with store_held(ubot, database_url, tag, gate, ready=scans_done(strategy_id)) as seen:
            db.close()
            signalled = time.monotonic()
            ubot.proc.send_signal(signal.SIGTERM)  # the master, which stops its worker gracefully
            # The worker has begun its stop when it ends the streams (before the pipeline's stop).
            assert ended.wait(TIMEOUT_S), "the event stream was not ended by the server"
        code = ubot.wait_exit(started=signalled)
    finally:
        ubot.close()
    report("gunicorn, a store in flight, a stream open", ubot.stopped_in_s)
    assert code == 0, ubot.tail()
    assert ubot.stopped_in_s < TIMEOUT_S
    log = ubot.log
    assert "pipeline stopped" in log, ubot.tail()
    assert "Traceback" not in log, log
    assert_closed(db, database_url, tag)
    stored = assert_flushed(strategy_id)
    # Under gunicorn the pipeline ticks on until the worker exits: at least the tick in flight.
    assert len(stored) >= seen.last_snapshot + 1


#: How long a stop may take with receivers holding every webhook sender (the issue 12 bound).
STOP_WITH_RECEIVERS_S = 3.0


def sign_up_users(db, hook_urls: list[str]) -> None:
    """One user per URL, each with a strategy that fires on every 1m bar for the top coin, delivered
    to that URL by webhook."""
    manager = UserManager(UserStore(db), SystemClock(), allow_local_webhooks=True)
    for n, hook_url in enumerate(hook_urls):
        user = manager.register(f"user{n}", f"user{n}@example.com", PASSWORD)
        manager.put_settings(user.id, {"webhook_url": hook_url, "webhook_secret": SECRET})
        verify(manager, user.id, "webhook")
        manager.create_strategy(
            user.id,
            {
                "name": "every bar",
                "condition": "price > 0",
                "timeframe": "1m",
                "top_n": 1,
                "channels": ["webhook"],
                "frequency": "once_per_bar",
            },
        )


def test_sigterm_with_four_receivers_dripping_exits_at_once_and_keeps_their_deliveries_pending(
    tmp_path, db, database_url, market
) -> None:
    """Four users' receivers send a status line and then a byte every 0.2 s (no read ever times out),
    holding the four webhook senders; the attempt deadline is a minute. SIGTERM cuts their attempts
    instead of waiting for them: uBot exits 0 within :data:`STOP_WITH_RECEIVERS_S`, every sender
    thread stopped, and the deliveries stay unsent and uncounted (resumed at the next start)."""
    url, tag = tagged(database_url)
    with FakeWebhook() as hook:
        hook.script(*[Drip(every_s=0.2, count=3000)] * 4)  # 10 minutes each, unless cut
        sign_up_users(db, [hook.url(f"/user{n}") for n in range(4)])
        env = {
            "UBOT_NOTIFY_WEBHOOK_ALLOW_PRIVATE": "true",
            "UBOT_NOTIFY_WEBHOOK_TIMEOUT": "30",
            "UBOT_NOTIFY_ATTEMPT_DEADLINE_S": "60",
            "UBOT_MARKET_REPLAY_DELIVER": "true",  # the replay stands for a live market here
        }
        ubot = replay(tmp_path, market, url, env=env)
        try:
            wait_until(lambda: len(hook.requests) == 4, "the four receivers to hold the senders", alive=ubot)
            signalled = time.monotonic()
            ubot.proc.send_signal(signal.SIGTERM)
            code = ubot.wait_exit(timeout=STOP_WITH_RECEIVERS_S, started=signalled)
        finally:
            ubot.close()
    report("headless, four webhook receivers dripping (deadline 60 s)", ubot.stopped_in_s)
    assert code == 0, ubot.tail()
    assert "Traceback" not in ubot.log, ubot.log
    assert "did not stop in time" not in ubot.log, ubot.tail()
    statuses = deliveries()
    assert statuses and "sent" not in statuses.values()
    assert set(statuses.values()) <= {"pending", "held"}  # never lost, never marked failed
    assert {attempts for (attempts,) in Delivery.select(Delivery.attempts).tuples()} == {0}
    assert len(hook.requests) == 4  # one at a time per receiver: the later alerts waited behind


def report(what: str, seconds: float | None) -> None:
    print(f"\n[graceful stop] {what}: exited {seconds:.2f} s after SIGTERM")


SYS_TGKILL = {"x86_64": 234, "aarch64": 131}


def test_sigterm_taken_by_another_thread_still_stops_headless_ubot(tmp_path, db, database_url) -> None:
    """Linux delivers a process-directed signal to any thread that does not block it; CPython runs the
    handler in the main thread, at its next bytecode. The signal is sent here to one of uBot's
    actor threads (``tgkill``), as the kernel may choose (it did, in 3 of 4 runs, for a SIGTERM
    sent to a process stopped and continued). Simulated market: it never ends by itself."""
    ubot = start(tmp_path, "--source", "simulated", "--interval", "0", "--limit", "50", "--db", database_url)
    try:
        wait_until(lambda: last_snapshot() >= 2, "a few snapshots", alive=ubot)
        tid = max(int(t) for t in os.listdir(f"/proc/{ubot.pid}/task") if int(t) != ubot.pid)
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(SYS_TGKILL[os.uname().machine], ubot.pid, tid, signal.SIGTERM) == 0
        code = ubot.wait_exit(timeout=5)  # a stop takes ~0.1 s: 5 s is plenty
    finally:
        ubot.close()
    assert code == 0, ubot.tail()
