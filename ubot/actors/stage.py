"""What the actors share: dispatch on the message's type, time a pipeline stage's work, and never let
one bad tick (or one failed told message) kill an actor; the shell of an actor that answers reads.

Every actor dispatches with :func:`functools.singledispatchmethod` on the message's type: each message
class names its handler once (``@receive.register``), a message no handler takes is a ``TypeError``
(:func:`unexpected`). See docs/architecture.md, "Messages".
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import pykka

from ubot.messages import Fetched, TickDone
from ubot.models.db import close_connection
from ubot.schedule import Tick
from ubot.stopping import Stopped

log = logging.getLogger(__name__)

A = TypeVar("A", bound=pykka.Actor)
M = TypeVar("M")


def unexpected(actor: object, message: Any) -> NoReturn:
    """The base case of every actor's dispatch. The type only: a message's fields may hold a secret."""
    raise TypeError(f"{type(actor).__name__}: unexpected message {type(message).__name__}")


def not_fatal(handler: Callable[[A, M], None]) -> Callable[[A, M], None]:
    """For a told message nobody waits on: a failure is logged and the actor stays up for the next.
    An actor with a ``stop_token`` (``ubot/stopping.py``) drops its messages once its process stops,
    and a handler that raises :class:`~ubot.stopping.Stopped` ends quietly: its stop comes next."""

    @functools.wraps(handler)
    def guarded(actor: A, message: M) -> None:
        if stopping(actor):
            return
        try:
            handler(actor, message)
        except Stopped:
            log.debug("%s: %s abandoned, the process stops", type(actor).__name__, type(message).__name__)
        except Exception:  # noqa: BLE001 - logged; the next message comes again
            log.exception("%s: %s failed", type(actor).__name__, type(message).__name__)

    return guarded


def stopping(actor: object) -> bool:
    """Whether ``actor``'s process is stopping (its ``stop_token`` set; never without one)."""
    token = getattr(actor, "stop_token", None)
    return token is not None and token.stopping


@functools.singledispatch
def skipped(message: Any, stage: tuple[str, float], reason: str) -> TickDone | None:
    """The ``TickDone`` that ends ``message``'s tick at ``stage``; None for a message of no tick (a
    query: its failure goes back to whoever asked)."""
    return None


@skipped.register
def _tick_skipped(message: Tick, stage: tuple[str, float], reason: str) -> TickDone:
    return TickDone(tick=message, stages=(stage,), outcome="skipped", reason=reason)


@skipped.register
def _fetched_skipped(message: Fetched, stage: tuple[str, float], reason: str) -> TickDone:
    return TickDone(
        tick=message.tick,
        stages=message.stages + (stage,),
        outcome="skipped",
        reason=reason,
        coins=len(message.snapshot),
        position=message.position,
    )


class Stage(pykka.ThreadingActor):
    """A pipeline actor: its ``receive`` handlers do the work; a failure ends the tick, not the actor."""

    name = "stage"

    def __init__(self, monitor: pykka.ActorRef) -> None:
        super().__init__()
        self.monitor = monitor

    def on_receive(self, message: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.receive(message)
        except Exception as exc:  # noqa: BLE001 - reported, tick skipped, actor stays alive
            done = skipped(
                message,
                (self.name, self.elapsed_ms(started)),
                f"{self.name} failed: {type(exc).__name__}: {exc}",
            )
            if done is None:
                raise  # a query: the exception goes back to whoever asked
            log.exception("%s failed on tick %d", self.name, done.tick.number)
            self.monitor.tell(done)
            return None

    def receive(self, message: Any) -> Any:
        """Each stage's dispatch (a ``functools.singledispatchmethod``)."""
        unexpected(self, message)

    def on_stop(self) -> None:
        close_connection()

    def elapsed_ms(self, started: float) -> float:
        return (time.perf_counter() - started) * 1000

    def skip(self, message: Fetched | Tick, reason: str, started: float) -> None:
        """End this tick here: tell the Monitor why."""
        self.monitor.tell(skipped(message, (self.name, self.elapsed_ms(started)), reason))


class Reader(pykka.ThreadingActor):
    """An actor that answers the gateway's reads in its own thread, on its own database connection
    (closed when it stops), so a slow read holds up neither the pipeline nor the gateway: the History
    actor, the DryRun actors. Its ``on_receive`` handlers answer; a failure goes back to whoever asked."""

    def on_stop(self) -> None:
        close_connection()


def tell_if_alive(ref: pykka.ActorRef, message: Any) -> bool:
    """Tell ``ref``; False when it has stopped (the system is stopping: nothing to do about it)."""
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return False
    return True
