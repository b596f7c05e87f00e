"""Strategy changes across processes: a gateway's UserManager publishes ``StrategiesChanged`` on the
bus; the engine's relay reads the user's strategies from the database and tells its Scanner. And
the engine's standby: it waits for the lock and takes it once free."""

from __future__ import annotations

import queue
import threading
from typing import Any

from tests.support.waits import wait_until
from tests.users.test_scanner_link import PW, Recorder, strategy
from ubot.actors.user_manager import UserManagerActor
from ubot.bus import STRATEGIES, InProcessBus, StrategiesChanged
from ubot.engine_lock import FileEngineLock
from ubot.engine_role import Standby, follow_strategies
from ubot.scan.messages import WatchStrategies
from ubot.scan.spec import UserStrategies
from ubot.users.manager import UserManager as U

WAIT = 10.0


def test_a_change_on_a_gateway_reaches_the_engines_scanner(manager, store, clock, passwords) -> None:
    bus = InProcessBus()
    gateway = UserManagerActor.start(
        manager, on_changed=lambda user_id: bus.publish(STRATEGIES, StrategiesChanged(user_id))
    )
    engine = UserManagerActor.start(U(store, clock, passwords=passwords, analyze=manager.analyze))
    told: queue.Queue = queue.Queue()
    scanner = Recorder.start(told)
    start = bus.last_id(STRATEGIES)
    assert engine.ask(WatchStrategies(scanner), timeout=WAIT) == ()
    relay = follow_strategies(bus, engine, scanner, start)
    try:
        users: Any = gateway.proxy().manager
        users.register("ada", "ada@example.com", PW).get(timeout=WAIT)
        ada = users.authenticate(users.login("ada", PW, None).get(timeout=WAIT).token).get(timeout=WAIT)
        created = users.create_strategy(ada, strategy()).get(timeout=WAIT)
        assert [s.name for s in told.get(timeout=WAIT).specs] == ["Dip"]
        users.patch_strategy(ada, created.id, {"enabled": False}).get(timeout=WAIT)
        assert told.get(timeout=WAIT) == UserStrategies(ada, ())
    finally:
        relay.stop()
        bus.close()
        for ref in (gateway, engine, scanner):
            ref.stop()


def test_a_standby_waits_for_the_lock_and_takes_it_once_free(tmp_path) -> None:
    path = str(tmp_path / "ubot.db.lock")
    active = FileEngineLock(path)
    assert active.try_acquire()
    standby_lock = FileEngineLock(path)
    stop = threading.Event()
    standby = Standby(standby_lock, 0.01, stop)
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(standby.wait()))
    thread.start()
    try:
        wait_until(lambda: standby.polls >= 2, "the standby to poll twice")
        assert not result  # still standing by
        active.release()  # the active engine died: the OS released its lock
        thread.join(WAIT)
        assert result == [True]
        assert not FileEngineLock(path).try_acquire()  # held by the new active engine
    finally:
        stop.set()
        thread.join(WAIT)
        standby_lock.release()


def test_a_standby_told_to_stop_returns_without_the_lock(tmp_path) -> None:
    path = str(tmp_path / "ubot.db.lock")
    active = FileEngineLock(path)
    assert active.try_acquire()
    stop = threading.Event()
    stop.set()
    assert Standby(FileEngineLock(path), 0.01, stop).wait() is False
    active.release()
