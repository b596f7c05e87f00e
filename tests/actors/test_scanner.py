"""The Scanner supervisor and its workers, with recording stand-ins for the UserManager, the Notifier
and the Monitor. Every wait is for a message."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pykka

from tests.scan.support import MINUTE, T0, candles, snapshot, spec
from ubot.actors.scanner import Scanner
from ubot.messages import Candled
from ubot.notify.messages import AlertState, GetAlertState, GetScanMarks, ScanOutcome
from ubot.scan.firing import ARMED
from ubot.scan.messages import DisableStrategy, ScannerStats, StrategyErrors, WatchStrategies
from ubot.scan.spec import UserStrategies
from ubot.schedule import Tick

WAIT = 10.0
COINS = [(1, "BTC"), (2, "ETH"), (3, "SOL")]


class Stand(pykka.ThreadingActor):
    """Records what it is told. As the UserManager: answers WatchStrategies with ``specs``. As the
    Notifier: keeps the state rows of every ScanOutcome, after deleting those it forgets (like the
    real one writes them), and answers GetAlertState from them, and GetScanMarks from the outcomes
    that name their snapshot (without the database's guard)."""

    def __init__(self, told: queue.Queue, specs=(), states=(), gate: threading.Event | None = None) -> None:
        super().__init__()
        self.told, self.specs, self.gate = told, specs, gate
        self.states = {(s.strategy_id, s.coin_id): s for s in states}
        self.marks: dict[int, int] = {}

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, WatchStrategies):
            return (UserStrategies(7, tuple(self.specs)),)
        if isinstance(message, GetAlertState):
            if self.gate is not None:  # the asking worker waits, and its mailbox with it
                self.gate.wait(WAIT)
            return tuple(s for s in self.states.values() if s.strategy_id in message.strategy_ids)
        if isinstance(message, GetScanMarks):
            return {i: self.marks[i] for i in message.strategy_ids if i in self.marks}
        if isinstance(message, ScanOutcome):
            self.marks.update(dict.fromkeys(message.scanned, message.snapshot_id))
            self.states = {key: s for key, s in self.states.items() if key[0] not in message.forget}
            self.states.update({(s.strategy_id, s.coin_id): s for s in message.states})
        self.told.put(message)
        return None


class Rig:
    def __init__(self, specs, states=(), workers=3, gate=None) -> None:
        self.users_q, self.notes_q, self.monitor_q = queue.Queue(), queue.Queue(), queue.Queue()
        self.users = Stand.start(self.users_q, specs)
        self.notifier = Stand.start(self.notes_q, states=states, gate=gate)
        self.monitor = Stand.start(self.monitor_q)
        self.scanner = Scanner.start(
            workers, users=self.users, notifier=self.notifier, monitor=self.monitor, now_ms=lambda: T0
        )
        self.number = 0

    def tick(self, prices, ts=None) -> None:
        self.number += 1
        ts = ts or T0 + self.number * 1000
        snap = snapshot(ts, COINS, price=prices)
        opened = {"1m": candles("1m", [(c, ts - ts % MINUTE, p) for (c, _), p in zip(COINS, prices)])}
        tick = Tick(self.number, ts, ts)
        self.scanner.tell(Candled(tick, snap, "test", snapshot_id=self.number, open_candles=opened))

    def stats(self) -> ScannerStats:
        return _next(self.monitor_q, ScannerStats)

    def outcomes_until_stats(self) -> tuple[list[ScanOutcome], ScannerStats]:
        stats = self.stats()
        self.notifier.ask("flush-marker", timeout=WAIT)  # everything told before is recorded
        outcomes = []
        while not self.notes_q.empty():
            item = self.notes_q.get_nowait()
            if isinstance(item, ScanOutcome):
                outcomes.append(item)
        return outcomes, stats


def _next(q: queue.Queue, kind: type) -> Any:
    while True:
        try:
            item = q.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"no {kind.__name__} within {WAIT} s") from None
        if isinstance(item, kind):
            return item


def armed(*ids):
    return tuple(AlertState(i, ARMED, True) for i in ids)


def test_alerts_from_every_worker_reach_the_notifier():
    specs = [spec(i, "price > 10", user_id=7) for i in (1, 2, 3, 4)]
    rig = Rig(specs, states=armed(1, 2, 3, 4))
    rig.tick([20, 5, 30])
    outcomes, stats = rig.outcomes_until_stats()
    alerts = sorted((a.strategy_id, a.coin_id) for o in outcomes for a in o.alerts)
    assert alerts == [(s, c) for s in (1, 2, 3, 4) for c in (1, 3)]
    assert stats.scans == 1 and stats.strategies == 4 and stats.alerts == 8 and stats.last_evaluated == 4


def test_a_new_strategy_arms_first_and_its_state_goes_to_the_notifier():
    rig = Rig([spec(1, "price > 10")])
    rig.tick([20, 5, 30])
    outcomes, _ = rig.outcomes_until_stats()
    assert [a for o in outcomes for a in o.alerts] == []
    assert AlertState(1, ARMED, True) in [s for o in outcomes for s in o.states]


def test_a_dead_worker_is_restarted_with_its_strategies_and_state():
    specs = [spec(i, "price > 10") for i in (1, 2, 3)]  # one per worker: 1 % 3 == 1
    rig = Rig(specs, states=armed(1, 2, 3), workers=3)
    rig.tick([20, 5, 5])
    first, _ = rig.outcomes_until_stats()
    assert sorted(a.strategy_id for o in first for a in o.alerts) == [1, 2, 3]
    pool = list(rig.scanner.proxy().pool.get())
    pool[1].tell(object())  # a message the worker does not know: it raises and dies
    assert pool[1].actor_stopped.wait(WAIT)  # it told the supervisor before it stopped
    rig.tick([20, 20, 5])
    outcomes, stats = rig.outcomes_until_stats()
    assert stats.worker_restarts == 1
    new_pool = rig.scanner.proxy().pool.get()
    assert new_pool[0] is pool[0] and new_pool[2] is pool[2] and new_pool[1] is not pool[1]
    fired = sorted((a.strategy_id, a.coin_id) for o in outcomes for a in o.alerts)
    assert fired == [(1, 2), (2, 2), (3, 2)]  # strategy 1 got its state back: BTC did not fire again


def test_ticks_arriving_during_a_scan_wait_and_only_the_latest_is_kept():
    gate = threading.Event()  # strategy 1's worker waits for its firing state: no scan can finish
    rig = Rig([spec(1, "price > 10")], states=armed(1), gate=gate)
    rig.tick([20, 5, 5])
    rig.tick([5, 20, 5])  # waits
    rig.tick([5, 5, 20])  # replaces it: tick 2 is never scanned
    stats = rig.scanner.proxy().stats().get()
    assert stats.scans == 0 and stats.scans_skipped == 1
    gate.set()
    rig.stats()
    outcomes, stats = rig.outcomes_until_stats()
    assert stats.scans == 2 and stats.scans_skipped == 1
    assert sorted(a.coin_id for o in outcomes for a in o.alerts) == [1, 3]


def test_strategy_changes_reach_the_owning_worker():
    rig = Rig([spec(1, "price > 10")], states=armed(1, 2))
    rig.scanner.tell(UserStrategies(7, (spec(2, "price > 25"),)))
    rig.tick([30, 20, 5])
    outcomes, stats = rig.outcomes_until_stats()
    assert [(a.strategy_id, a.coin_id) for o in outcomes for a in o.alerts] == [(2, 1)]
    assert stats.strategies == 1


def test_errors_and_once_strategies_are_reported_to_the_user_manager():
    rig = Rig([spec(1, "rsi(14) < 30"), spec(2, "price > 10", frequency="once")])
    rig.tick([20, 5, 5])
    rig.stats()
    rig.users.ask("flush-marker", timeout=WAIT)
    told = []
    while not rig.users_q.empty():
        told.append(rig.users_q.get_nowait())
    errors = [m for m in told if isinstance(m, StrategyErrors)]
    assert errors and errors[0].errors == {1: "rsi(14) needs 15 candles of history"} and errors[0].at_ms == T0
    assert DisableStrategy(2) in told


def test_a_worker_that_dies_during_a_scan_gets_that_tick_again_after_its_restart():
    rig = Rig([spec(i, "price > 10") for i in (1, 2, 3)], states=armed(1, 2, 3), workers=3)
    doomed = rig.scanner.proxy().pool.get()[1]
    worker = doomed.proxy().worker.get()  # the plain object inside worker 1's actor
    real_scan = worker.scan

    def crash(frame):
        worker.scan = real_scan  # only once: the restarted worker is a new object anyway
        raise RuntimeError("a bug in the middle of a scan")

    worker.scan = crash
    rig.tick([20, 5, 5])
    outcomes, stats = rig.outcomes_until_stats()
    assert stats.worker_restarts == 1 and stats.scans == 1
    assert sorted(a.strategy_id for o in outcomes for a in o.alerts) == [1, 2, 3]


def test_new_rules_or_enabling_again_start_afresh_and_a_restart_does_not_revive_the_old_state():
    gate = threading.Event()
    gate.set()
    rig = Rig([spec(1, "price > 10")], states=armed(1), workers=1, gate=gate)
    rig.tick([20, 5, 5])  # BTC true: fires, and is remembered as true
    first, _ = rig.outcomes_until_stats()
    assert [a.coin_id for o in first for a in o.alerts] == [1]
    rig.scanner.tell(UserStrategies(7, (spec(1, "price > 15"),)))  # new rules
    rig.tick([20, 5, 5])
    outcomes, _ = rig.outcomes_until_stats()
    assert [o.forget for o in outcomes] == [(1,), ()]
    assert [a for o in outcomes for a in o.alerts] == []  # armed again: BTC, already true, waits
    assert AlertState(1, ARMED, True) in outcomes[1].states

    worker = rig.scanner.proxy().pool.get()[0]
    gate.clear()  # the worker is held (asking for another user's new strategy's saved state)...
    rig.scanner.tell(UserStrategies(8, (spec(5, "price > 1000", user_id=8),)))
    rig.tick([20, 5, 5])  # ...with its next scan waiting
    rig.scanner.proxy().stats().get()  # (the frame is sent)
    worker.tell(object())  # ...and a message it does not know waits next: it dies of it
    rig.scanner.tell(UserStrategies(7, ()))  # disabled and enabled again: forget, told to
    rig.scanner.tell(UserStrategies(7, (spec(1, "price > 15"),)))  # a worker about to die
    rig.scanner.proxy().stats().get()
    gate.set()
    rig.stats()
    rig.tick([20, 20, 5])
    outcomes, stats = rig.outcomes_until_stats()
    assert stats.worker_restarts == 1
    assert [o.forget for o in outcomes if o.forget] == [(1,)]  # told again to its successor
    assert [a for o in outcomes for a in o.alerts] == []  # armed again: the old state was not revived
    assert {k: v for k, v in rig.notifier.proxy().states.get().items() if k[0] == 1} == {
        (1, ARMED): AlertState(1, ARMED, True),
        (1, 1): AlertState(1, 1, True),
        (1, 2): AlertState(1, 2, True),
    }


# -- scanner processes (--role scanner): shares of the strategies ------------------------------------


class Stored:
    """Stands for the database's snapshots (``SnapshotReader.load``)."""

    def __init__(self) -> None:
        self.snapshots: dict[int, Any] = {}

    def add(self, snapshot_id: int, prices) -> None:
        self.snapshots[snapshot_id] = snapshot(T0 + snapshot_id * 1000, COINS, price=prices)

    def load(self, snapshot_id: int):
        return self.snapshots[snapshot_id]

    def ids_after(self, snapshot_id: int) -> list[int]:
        return sorted(i for i in self.snapshots if i > snapshot_id)


def test_scanner_processes_split_the_strategies_and_a_survivor_continues_a_dead_ones_state():
    from ubot.scan.assign import Shares, owner
    from ubot.scan.messages import ScanStored

    ids = range(1, 13)
    specs = [spec(i, "price > 10", user_id=7) for i in ids]
    users_q, notes_q, monitor_q = queue.Queue(), queue.Queue(), queue.Queue()
    users = Stand.start(users_q, specs)
    notifier = Stand.start(notes_q, states=armed(*ids))  # the database both scanners share
    monitor = Stand.start(monitor_q)
    stored = Stored()
    scanners = {
        name: Scanner.start(
            2,
            users=users,
            notifier=notifier,
            monitor=monitor,
            now_ms=lambda: T0,
            snapshots=stored,
            shares=Shares(name),
        )
        for name in ("a", "b")
    }

    def outcomes(scans: int) -> list[ScanOutcome]:
        stats = [_next(monitor_q, ScannerStats) for _ in range(scans)]
        notifier.ask("flush-marker", timeout=WAIT)
        found = []
        while not notes_q.empty():
            item = notes_q.get_nowait()
            if isinstance(item, ScanOutcome):
                found.append(item)
        assert sum(s.strategies for s in stats) == len(ids)
        return found

    stored.add(1, [20, 5, 30])
    for ref in scanners.values():
        ref.tell(ScanStored(1, 1, ("a", "b")))
    first = outcomes(2)
    fired = sorted((a.strategy_id, a.coin_id) for o in first for a in o.alerts)
    assert fired == [(s, c) for s in ids for c in (1, 3)]  # each once: no strategy scanned twice
    mine = {name: {s for s in ids if owner(s, ("a", "b")) == name} for name in ("a", "b")}
    assert mine["a"] and mine["b"]

    scanners["a"].stop()  # a dies: the next tick's view names b alone
    stored.add(2, [20, 20, 30])
    scanners["b"].tell(ScanStored(2, 2, ("b",)))
    second = outcomes(1)
    fired = sorted((a.strategy_id, a.coin_id) for o in second for a in o.alerts)
    # a's strategies continue from the state a wrote: BTC and SOL stay true (no alert), ETH crosses.
    assert fired == [(s, 2) for s in ids]
