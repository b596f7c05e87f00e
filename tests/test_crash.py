"""Crash tests (issue 6): ``kill -9`` of the serving process during a store, during alert delivery and
during candle roll-over; then uBot restarts on the same database, which must be consistent.

The market is a replay of the simulated market, one file per minute of data time (tests/procs.py
``write_market``), played back-to-back (``--interval 0``): every tick closes the 1m candles, every
fifth the 5m ones, and the replay crosses midnight (1h, 4h and 1d candles close too). A restarted
uBot replays from the first file: what is stored is skipped as a duplicate, the rest is stored.

The kill lands in a window that was *seen*, not guessed: the process is frozen (SIGSTOP), the test
looks at what it has open (tests/procs.py ``moment``: the SQLite write lock in ``/proc/locks``, or
PostgreSQL's ``pg_stat_activity``, and the committed watermark), and either kills it there, frozen,
or lets it go on and looks again a moment later. On PostgreSQL the store kills and the lost-alert
kill are made rather than caught: the test locks the table a write of uBot's is about to touch
(tests/procs.py ``WriteLock``) and kills it once that write waits there (``pg_blocking_pids``), what
its transaction wrote before uncommitted; then lets the lock go (the dead client's transaction is
rolled back, never committed).

Invariants after each kill and after each restart (tests/procs.py): every snapshot has all its quotes
and its global metrics and nothing is orphaned; the candle table is exactly what the stored quotes
folded so far imply (no duplicate (coin, timeframe, open_time), nothing missing, nothing counted
twice); at the end, the snapshots and candles are those of a run never killed (computed from the
recorded files).
"""

from __future__ import annotations

import random
import signal
import threading
from dataclasses import dataclass

import pytest
import requests

from tests.fakes.webhook import FakeWebhook, Hang, Reply, Request
from tests.procs import (
    Market,
    Moment,
    Ubot,
    WriteLock,
    assert_candles_match_quotes,
    assert_same_candles,
    assert_snapshots_whole,
    freeze,
    kill_at,
    last_snapshot,
    moment,
    new_snapshots,
    pg_backends,
    replay,
    shared_market,
    start,
    stored_candles,
    tagged,
    watermark,
    write_market,
)
from tests.replayfiles import ms
from tests.support.destinations import verify
from tests.support.waits import wait_until
from ubot.clocks import SystemClock
from ubot.models.alerts import SCAN_WATERMARK
from ubot.models.tables import AlertRecord, Delivery, GlobalMetric, Quote, SnapshotRecord
from ubot.models.users import UserStore
from ubot.users.manager import UserManager

MARKET_START = ms("2024-10-16T23:30:00Z")
KILLS = 3


@pytest.fixture(scope="session")
def market(tmp_path_factory) -> Market:
    return shared_market(tmp_path_factory)


def assert_consistent() -> tuple[int, int]:
    """The invariants that hold at any instant: whole snapshots, candles == what the folded quotes imply."""
    return assert_snapshots_whole(), assert_candles_match_quotes()


def finish(tmp_path, market: Market, url: str, batches: bool = False) -> None:
    """A last start that plays the replay to its end (exit 0), then: as if it had never been killed."""
    ubot = replay(tmp_path, market, url, batches=batches)
    try:
        assert ubot.wait_exit() == 0, ubot.tail()
    finally:
        ubot.close()
    assert "Traceback" not in ubot.log, ubot.log
    assert_consistent()
    stored = [
        t for (t,) in SnapshotRecord.select(SnapshotRecord.timestamp).order_by(SnapshotRecord.id).tuples()
    ]
    assert stored == market.snapshot_times  # none lost, none twice, in order
    assert watermark() == last_snapshot()
    assert_same_candles(stored_candles(), market.candles())


def crash_repeatedly(tmp_path, market, database_url, kills, batches: bool = False) -> list[Moment]:
    """For each (stage, accept) of ``kills``: start, kill at a moment of that stage that ``accept``
    takes, check the invariants; at the end, play the replay to its end and check again. ``batches``:
    the closed candles written every ``[database] candle_write_minutes`` (see ``procs.replay``)."""
    url, tag = tagged(database_url)
    rng = random.Random(6)
    seen: list[Moment] = []
    for stage, accept in kills:
        before = last_snapshot()
        ubot = replay(tmp_path, market, url, batches=batches)
        try:
            wait_until(
                lambda before=before: last_snapshot() > before, "a new snapshot after the restart", alive=ubot
            )
            if seen:  # the snapshots stored but not folded when it was killed are folded at start-up
                assert watermark() >= seen[-1].last_snapshot

            if isinstance(accept, Held):
                hit = kill_holding(ubot, database_url, tag, accept, before)
            else:

                def wanted(m: Moment, stage=stage, accept=accept, before=before) -> bool:
                    return m.stage == stage and m.last_snapshot > before and accept(m, before)

                hit = kill_at(
                    ubot, url, tag, wanted, f"a {stage} moment", jitter=lambda: rng.random() * 0.004
                )
        finally:
            ubot.close()
        assert ubot.proc.returncode == -signal.SIGKILL
        seen.append(hit)
        # Killed: what was committed is whole, what was in flight is not there at all. (A SQLite
        # process frozen inside its COMMIT may have written the commit frame: then it is all there.)
        in_commit = 1 if url.startswith("sqlite") else 0
        if stage == "store":
            assert hit.last_snapshot <= last_snapshot() <= hit.last_snapshot + in_commit
        else:
            assert last_snapshot() == hit.last_snapshot
        if stage == "ohlc":
            assert hit.watermark <= watermark() <= hit.watermark + in_commit
        else:
            assert watermark() == hit.watermark
        assert_consistent()
    finish(tmp_path, market, url, batches)
    return seen


def test_kill_9_during_a_store_leaves_no_partial_snapshot(tmp_path, db, database_url, market) -> None:
    """(a) Each kill lands while the Store's snapshot transaction is open (coins, snapshot row, quotes,
    global metrics): nothing of that snapshot is visible afterwards, and the restarted uBot stores it
    whole (the replay plays it again)."""
    if database_url.startswith("sqlite"):  # SQLite: the write lock says a transaction is open, not where
        kills = [("store", anywhere)] * KILLS
    else:  # PostgreSQL: held by the test's table lock, the snapshot row written, then the quotes too
        quote, global_metric = Quote._meta.table_name, GlobalMetric._meta.table_name
        kills = [
            ("store", Held(quote, 'COPY "quote"')),
            ("store", Held(global_metric, 'INSERT INTO "global_metric"')),
            ("store", Held(quote, 'COPY "quote"')),
        ]
    crash_repeatedly(tmp_path, market, database_url, kills)


def anywhere(m: Moment, before: int) -> bool:
    return True


@dataclass(frozen=True)
class Held:
    """A kill at a moment made rather than caught (PostgreSQL): the test locks ``table``
    (tests/procs.py ``WriteLock``) and kills uBot once a transaction of its waits there, at a
    statement beginning with ``statement``, what it wrote before uncommitted."""

    table: str
    statement: str


def kill_holding(ubot: Ubot, database_url: str, tag: str, held: Held, before: int) -> Moment:
    """SIGKILL ``ubot`` while a write of its waits for the test's lock on ``held.table``; then let
    the lock go and wait until PostgreSQL has ended the dead process's sessions (rolled back: a
    transaction commits only when its client says so). Not before a second new snapshot: after the
    first, the Store prunes old quotes (the next prune is an hour of data time later). Counted, not
    read off the ids: on PostgreSQL a killed Store's transaction used up a snapshot id (a sequence
    does not roll back), so the first new snapshot can be ``before + 2``, its prune still to come."""
    wait_until(lambda: new_snapshots(before) >= 2, "a second new snapshot", alive=ubot)
    lock = WriteLock(database_url, held.table)
    try:
        waiting = wait_until(lambda: lock.blocked(tag), f"a write to {held.table} to wait", alive=ubot)
        assert all(q.startswith(held.statement) for q in waiting), waiting
        seen = Moment("store", last_snapshot(), watermark(), tuple(waiting), watermark(SCAN_WATERMARK))
        ubot.kill()
    finally:
        lock.release()
    wait_until(lambda: pg_backends(tag) == 0, "the killed uBot's sessions to end")
    return seen


def test_kill_9_during_candle_roll_over_keeps_candles_continuous(tmp_path, db, database_url, market) -> None:
    """(c) Killed while the OHLC writes the candles of a tick that closes 5m candles (and 1m ones), and
    killed between the Store's commit and the OHLC's (the snapshot stored, not yet folded): the
    restart rebuilds the open candles (the 1m ones from the stored quotes), folds the stored snapshot in once, and the
    candles equal those of a run never killed."""

    def rolls_over(m: Moment, before: int) -> bool:
        # A write after the Store's commit may also be its hourly prune: on the first new snapshot of
        # a run, and an hour of data time later. Not those.
        stamps = dict(SnapshotRecord.select(SnapshotRecord.id, SnapshotRecord.timestamp).tuples())
        first = min(i for i in stamps if i > before)  # not before + 1: ids may skip (kill_holding)
        if m.last_snapshot == first:
            return False
        folding = stamps[m.last_snapshot]  # the snapshot being folded in
        if folding - stamps[first] >= 3_600_000:
            return False
        if not database_url.startswith("sqlite") and not any(
            '"candle"' in q or '"meta"' in q for q in m.statements
        ):
            return False
        return folding % 300_000 == 0

    moments = crash_repeatedly(
        tmp_path, market, database_url, [("ohlc", rolls_over), ("between", anywhere), ("ohlc", rolls_over)]
    )
    assert [m.watermark < m.last_snapshot for m in moments] == [True, True, True]


def test_kill_9_with_closed_candles_kept_for_a_batch_loses_none(tmp_path, db, database_url, market) -> None:
    """Closed candles written in batches (``[database] candle_write_minutes``, 5 by default): killed
    while the candles of several stored snapshots are only in memory, the restart rebuilds them from
    the stored quotes and writes them, and the candles equal those of a run never killed."""

    def several_kept(m: Moment, before: int) -> bool:
        return m.last_snapshot - m.watermark >= 3

    moments = crash_repeatedly(tmp_path, market, database_url, [("between", several_kept)] * 2, batches=True)
    assert all(m.last_snapshot - m.watermark >= 3 for m in moments)


# --- (b) alert delivery -----------------------------------------------------------------------------

SECRET = "crash-test-secret-0123"
PASSWORD = "correct horse battery staple"
ALERT_FILES = 30


class Receiver(FakeWebhook):
    """The webhook receiver: a real socket; counts deliveries by ``X-Ubot-Delivery``. ``freeze_at``:
    on that request (1-based), SIGSTOP the sender's process and wait until all its threads stopped
    *before* answering 200, so the answer is accepted by the receiver but never read by uBot (the
    at-least-once window). Answering as soon as ``kill`` returned let, under load, a sender thread
    not stopped yet read the 200, mark the delivery sent and send the next one, which the receiver
    recorded after the test had looked (and the next worker sent again)."""

    def __init__(self) -> None:
        super().__init__()
        self.freeze_at: tuple[int, int] | None = None  # (request number, pid)
        self.frozen = threading.Event()

    def answer(self, request: Request) -> Reply:
        with self.lock:
            number = len(self.requests)
        if self.freeze_at is not None and number == self.freeze_at[0]:
            freeze(self.freeze_at[1])  # every thread stopped: none reads the answer below
            self.frozen.set()
        return super().answer(request)

    def ids(self) -> list[str]:
        with self.lock:
            return [r.header("X-Ubot-Delivery") for r in self.requests]


def exhausted(ubot) -> bool:
    try:
        return bool(requests.get(ubot.base + "/health", timeout=5).json().get("source_exhausted"))
    except requests.ConnectionError:  # a worker booting
        return False


def scanner(ubot) -> dict:
    return requests.get(ubot.base + "/health", timeout=5).json().get("scanner") or {}


def scanned(ubot) -> int:
    figures = scanner(ubot)
    return figures.get("scans", 0) + figures.get("scans_skipped", 0)


def alerts(ubot) -> int:
    return scanner(ubot).get("alerts", -1)


def deliveries() -> dict[str, str]:
    """Status by delivery key (``X-Ubot-Delivery``)."""
    return dict(Delivery.select(Delivery.key, Delivery.status).tuples())


def sent() -> set[str]:
    return {i for i, status in deliveries().items() if status == "sent"}


def alerted_bars(strategy_id: int) -> list[int]:
    return [
        b
        for (b,) in AlertRecord.select(AlertRecord.bar_open)
        .where(AlertRecord.strategy == strategy_id)
        .tuples()
    ]


def sign_up(db, hook_url: str | None) -> int:
    """A user whose strategy fires on every 1m bar for the top coin, delivered by webhook (or only
    written, without ``hook_url``)."""
    manager = UserManager(UserStore(db), SystemClock(), allow_local_webhooks=True)
    user = manager.register("ada", "ada@example.com", PASSWORD)
    if hook_url is not None:
        manager.put_settings(user.id, {"webhook_url": hook_url, "webhook_secret": SECRET})
        verify(manager, user.id, "webhook")
    strategy = manager.create_strategy(
        user.id,
        {
            "name": "every bar",
            "condition": "price > 0",
            "timeframe": "1m",
            "top_n": 1,
            "channels": ["webhook"] if hook_url is not None else [],
            "frequency": "once_per_bar",
        },
    )
    return strategy.id


@pytest.fixture(scope="session")
def small_market(tmp_path_factory) -> Market:
    return write_market(tmp_path_factory.getbasetemp() / "market-alerts", ALERT_FILES, 20, MARKET_START)


def test_kill_9_during_alert_delivery_sends_each_pending_delivery(
    tmp_path, db, database_url, small_market
) -> None:
    """(b) Under gunicorn; the gunicorn worker (where the actors and senders live) is SIGKILLed twice,
    and the master boots a new one on the same database each time:

    1. with a delivery in flight: the receiver holds the 3rd request without answering, the alerts
       of the later ticks wait as pending deliveries behind it (one send at a time per destination);
    2. with an answer accepted but not read: on the 8th request the receiver freezes the worker,
       then answers 200: the receiver has it, uBot never marked it sent.

    Then every delivery reaches the receiver; one answered 2xx and marked sent never comes again; the
    only repeats are those two (both inside the documented at-least-once window: not marked sent).
    """
    url, _ = tagged(database_url)
    with Receiver() as hook:
        strategy_id = sign_up(db, hook.url())
        hook.script(Reply(200, {"received": True}), Reply(200, {"received": True}), Hang())
        env = {
            "UBOT_NOTIFY_WEBHOOK_ALLOW_PRIVATE": "true",
            "UBOT_NOTIFY_WEBHOOK_TIMEOUT": "60",
            # the held request must stay in flight until the kill: no attempt deadline cuts it first
            # (at the default 10 s a loaded machine let it be cut and retried, shifting the requests)
            "UBOT_NOTIFY_ATTEMPT_DEADLINE_S": "120",
        }
        ubot = start(
            tmp_path,
            *("--source", "replay", "--replay-dir", small_market.directory, "--interval", "0", "--db", url),
            "--deliver",  # the replay stands for a live market here
            env=env,
            http=True,
        )
        try:
            # 1. a delivery in flight
            first = ubot.wait_worker(1)
            wait_until(
                lambda: len(hook.requests) == 3 and len(sent()) == 2, "the 3rd delivery held", alive=ubot
            )
            # Every tick scanned and its alert written (an alert of a tick in flight at a kill is the
            # subject of the next test).
            wait_until(lambda: exhausted(ubot), "the end of the replay", alive=ubot)
            # Each tick's scan ended (under load the Scanner drops a tick that arrives mid-scan, by
            # design) and its alert written.
            wait_until(
                lambda: scanned(ubot) == ALERT_FILES and len(deliveries()) == alerts(ubot),
                "the scans",
                alive=ubot,
            )
            ubot.kill_worker(first)
            in_flight = hook.ids()[2]
            assert deliveries()[in_flight] == "pending"
            sent_at_kill = [sent()]
            seen_at_kill = [hook.ids()]

            # 2. an answer accepted, not yet read
            second = ubot.wait_worker(2)
            hook.freeze_at = (8, second)
            wait_until(hook.frozen.is_set, "the 8th request", alive=ubot)
            accepted = hook.ids()[7]
            assert deliveries()[accepted] == "pending"  # frozen before it could read the 200
            ubot.kill_worker(second)
            sent_at_kill.append(sent())
            seen_at_kill.append(hook.ids())

            # 3. the third worker sends the rest; the replay ends, the gateway keeps serving
            ubot.wait_worker(3)
            wait_until(lambda: exhausted(ubot), "the end of the replay", alive=ubot)
            wait_until(lambda: set(deliveries()) == sent(), "every delivery sent", alive=ubot)
            assert ubot.stop(signal.SIGTERM) == 0, ubot.tail()
        finally:
            ubot.close()
        receipts = hook.ids()
    log = ubot.log
    assert "Traceback" not in log, log
    assert log.count("resuming") == 2, log

    # Every alert: one per snapshot (top 1, every 1m bar), none twice for a bar.
    snapshots = SnapshotRecord.select().count()
    assert snapshots == ALERT_FILES
    bars = alerted_bars(strategy_id)
    assert len(bars) == len(set(bars)) and set(bars) <= set(small_market.snapshot_times)

    every = deliveries()
    assert set(every.values()) == {"sent"}
    counts = {i: receipts.count(i) for i in every}
    assert all(n >= 1 for n in counts.values()), counts
    for at_kill, before in zip(sent_at_kill, seen_at_kill, strict=True):
        for delivery_id in at_kill:  # marked sent: never again
            assert counts[delivery_id] == before.count(delivery_id), delivery_id
    # The at-least-once window of each kill: received before it, not marked sent at it (in flight,
    # or answered 2xx while uBot had not yet written "sent"). Only those come again, once per kill.
    windows = [set(before) - at_kill for at_kill, before in zip(sent_at_kill, seen_at_kill, strict=True)]
    assert in_flight in windows[0] and accepted in windows[1]
    for delivery_id, n in counts.items():
        assert n == 1 + sum(delivery_id in w for w in windows), (delivery_id, n, windows)
    print(
        f"\n[crash] at-least-once windows (deliveries sent again after each kill): {[sorted(w) for w in windows]}"
    )


def test_kill_9_after_a_store_before_its_alerts_are_written_loses_no_alert(
    tmp_path, db, database_url, small_market
) -> None:
    """Killed when a snapshot is committed but the alert it makes (every 1m bar of the top coin fires)
    is not: after the restart every bar must still have its alert."""
    url, tag = tagged(database_url)
    strategy_id = sign_up(db, None)
    ubot = replay(tmp_path, small_market, url)
    try:

        def unscanned(m: Moment) -> bool:
            if m.last_snapshot < 3:
                return False
            stamp = SnapshotRecord.get_by_id(m.last_snapshot).timestamp
            return stamp not in alerted_bars(strategy_id)

        if database_url.startswith("sqlite"):
            kill_at(ubot, url, tag, unscanned, "a stored snapshot without its alert")
        else:  # made: the alerts wait for the test's lock, the Store goes on
            # after a first scan written (a strategy never scanned goes live at the newest snapshot)
            wait_until(lambda: watermark(SCAN_WATERMARK) >= 1, "a first scan", alive=ubot)
            lock = WriteLock(database_url, AlertRecord._meta.table_name)
            try:
                wait_until(lambda: lock.blocked(tag), "the Notifier's write to wait", alive=ubot)
                wait_until(
                    lambda: unscanned(moment(url, tag, ubot.pid)),
                    "stored snapshots without alerts",
                    alive=ubot,
                )
                ubot.kill()
            finally:
                lock.release()
            wait_until(lambda: pg_backends(tag) == 0, "the killed uBot's sessions to end")
    finally:
        ubot.close()
    finish(tmp_path, small_market, url)
    assert sorted(alerted_bars(strategy_id)) == small_market.snapshot_times
