"""What every pipeline actor shares: time its work, and never let one bad tick kill the pipeline."""

from __future__ import annotations

import logging
import time
from typing import Any

import pykka

from ubot.messages import Fetched, TickDone
from ubot.models.db import close_connection
from ubot.schedule import Tick

log = logging.getLogger(__name__)


class Stage(pykka.ThreadingActor):
    """A pipeline actor: ``handle(message)`` does the work; failures end the tick, not the actor."""

    name = "stage"

    def __init__(self, monitor: pykka.ActorRef) -> None:
        super().__init__()
        self.monitor = monitor

    def on_receive(self, message: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.handle(message)
        except Exception as exc:  # noqa: BLE001 - reported, tick skipped, actor stays alive
            if not isinstance(message, Fetched | Tick):
                raise  # a query: the exception goes back to whoever asked
            tick = message if isinstance(message, Tick) else message.tick
            log.exception("%s failed on tick %d", self.name, tick.number)
            self.skip(message, f"{self.name} failed: {type(exc).__name__}: {exc}", started)
            return None

    def handle(self, message: Any) -> Any:
        raise NotImplementedError

    def on_stop(self) -> None:
        close_connection()

    def elapsed_ms(self, started: float) -> float:
        return (time.perf_counter() - started) * 1000

    def skip(self, message: Fetched | Tick, reason: str, started: float) -> None:
        """End this tick here: tell the Monitor why."""
        stage = ((self.name, self.elapsed_ms(started)),)
        if isinstance(message, Tick):
            done = TickDone(tick=message, stages=stage, outcome="skipped", reason=reason)
        else:
            done = TickDone(
                tick=message.tick,
                stages=message.stages + stage,
                outcome="skipped",
                reason=reason,
                coins=len(message.snapshot),
                position=message.position,
            )
        self.monitor.tell(done)


def tell_if_alive(ref: pykka.ActorRef, message: Any) -> bool:
    """Tell ``ref``; False when it has stopped (the system is stopping: nothing to do about it)."""
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return False
    return True
