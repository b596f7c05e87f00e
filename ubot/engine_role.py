"""The ``engine`` role: one active engine per database, any number standing by.

* Election: the database's engine lock (:mod:`ubot.engine_lock`, a PostgreSQL session-level advisory
  lock). :class:`Standby` polls it every ``poll_s`` seconds; the engine that takes it starts the
  pipeline. When the active engine dies (even ``kill -9``), the kernel closes its connection, the
  server ends its session and releases the lock, and a standby takes it at its next poll. The new
  engine's OHLC folds the snapshots stored after its watermark and its Scanner scans those after the
  scan watermark, so nothing stored is lost; a snapshot is never stored twice (the Store refuses a
  duplicate time).
* Strategy changes made on a gateway arrive on the ``strategies`` topic
  (:class:`~ubot.bus.StrategiesChanged`, a user id): :func:`follow_strategies` reads the user's
  strategies from the database (through the engine's UserManager) and tells the Scanner, as the
  UserManager does after a change made in its own process.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pykka

from ubot.bus import STRATEGIES, Batch, Bus, EntryId, Relay, StrategiesChanged
from ubot.engine_lock import EngineLock

log = logging.getLogger(__name__)

#: How long the engine waits for its UserManager to read a user's strategies.
ASK_TIMEOUT_S = 30.0


def standby_poll_s(interval_s: float) -> float:
    """How often a standby tries the lock: a quarter of the interval, between 0.2 s and 2 s, so a
    takeover comes well within 2 intervals of the active engine's death."""
    return min(2.0, max(0.2, interval_s / 4))


class Standby:
    """Waits for the engine lock, polling it; says once that it is standing by, and for whom."""

    def __init__(self, lock: EngineLock, poll_s: float, stop: threading.Event) -> None:
        self.lock = lock
        self.poll_s = poll_s
        self.stop = stop
        self.polls = 0

    def wait(self) -> bool:
        """True once this process holds the lock; False when told to stop first."""
        announced = False
        while not self.stop.is_set():
            self.polls += 1
            if self.lock.try_acquire():
                if announced:
                    log.info("engine: the lock is free: taking over as the active engine")
                return True
            if not announced:
                log.info(
                    "engine: standby: another engine is active (%s); trying again every %g s",
                    self.lock.holder(),
                    self.poll_s,
                )
                announced = True
            self.stop.wait(self.poll_s)
        return False


def follow_strategies(bus: Bus, users: pykka.ActorRef, scanner: pykka.ActorRef, after: EntryId) -> Relay:
    """A relay on ``strategies`` that tells ``scanner`` each changed user's strategies (all of them
    when entries were missed: Redis restarted, or the topic was trimmed past this reader).
    ``after``: the topic's last id taken *before* the Scanner read every strategy at its start, so
    a change made meanwhile is not lost (None: Redis was unreachable; from its newest entry)."""
    manager: Any = users.proxy().manager

    def deliver(batch: Batch) -> None:
        if batch.missed:
            for change in manager.all_specs().get(timeout=ASK_TIMEOUT_S):
                scanner.tell(change)
        seen: set[int] = set()
        for entry in batch.entries:
            message = entry.message
            if isinstance(message, StrategiesChanged) and message.user_id not in seen:
                seen.add(message.user_id)
                scanner.tell(manager.specs_of(message.user_id).get(timeout=ASK_TIMEOUT_S))

    return Relay(bus, STRATEGIES, deliver, after=after).start()
