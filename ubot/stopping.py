"""A process's stop, seen by its long work: set once when the process stops (SIGINT, SIGTERM), checked
between bounded chunks of anything that may run for seconds (planning tens of thousands of strategies,
seeding indicator series from the stored candles, reading every user's strategies), so that a stop
never waits behind such work (issue 12: every role stops within 3 s of the signal).

Work that sees the stop raises :class:`Stopped`, which the actors' told-message guard
(``actors/stage.py``, ``not_fatal``) takes quietly; an actor whose process stops drops the messages
still in its mailbox (:meth:`StopToken.stopping`), so its own stop comes next. What is dropped is
what a restart (or another scanner process) does again from the database: a strategy's scan marks
and firing state, the seeds of its series.
"""

from __future__ import annotations

import threading


class Stopped(Exception):  # noqa: N818 - what happened, not an error
    """The process is stopping: the rest of this work is abandoned."""


class StopToken(threading.Event):
    """Set once, by whoever stops the process; read by any thread. An event (``set``, ``wait``), so a
    timed sleep ends at the stop too (``Clock.sleep_until``)."""

    @property
    def stopping(self) -> bool:
        return self.is_set()

    def check(self) -> None:
        """Raise :class:`Stopped` once the process stops: between two chunks of long work."""
        if self.is_set():
            raise Stopped


#: How much long work runs between two checks: strategies planned, users read.
CHUNK = 500
