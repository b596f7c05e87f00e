"""A thread that follows one topic and hands each batch to a callback: the loop every role needs
(a scanner's ticks and strategy changes, a gateway's events), written and tested once.

* Batches are delivered in order, from the relay's thread, only when they carry entries or say that
  entries were ``missed`` (then the receiver catches up from the database).
* When the bus is unreachable the relay keeps reading (each read retries with backoff, see the
  implementations) and its cursor stays where it was, so it resumes without loss; the outage is
  logged once, and ``bus.health()`` says disconnected meanwhile. The first batch after an outage
  says ``missed`` (even when the topic kept every entry): what publishers could not publish while
  the bus was away never reached it, so the receiver catches up from the database (a scanner
  reloads every strategy; a gateway's ring restarts there, see ``stream/hub.py``).
* A callback that raises is logged; the relay goes on with the next batch.
* It ends when the bus is closed, or within ``timeout_s`` after :meth:`Relay.stop`.

A gateway runs one relay per topic and passes each batch to its event loop with
``loop.call_soon_threadsafe``: one Redis connection per topic per process, whatever the number of
clients.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

from ubot.bus.base import Batch, Bus, BusClosed, BusUnavailable
from ubot.bus.ids import EntryId

log = logging.getLogger(__name__)


class Relay:
    def __init__(
        self,
        bus: Bus,
        topic: str,
        deliver: Callable[[Batch], object],
        *,
        after: EntryId | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        """``after``: the id to resume after (None: only what is published from the first read on)."""
        self.topic = topic
        self.deliver = deliver
        self.timeout_s = timeout_s
        self._subscription = bus.subscribe(topic, after)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"bus-relay-{topic}", daemon=True)

    @property
    def cursor(self) -> EntryId | None:
        """The id of the last entry read (None: not read yet)."""
        return self._subscription.cursor

    def start(self) -> Relay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; whether it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        outage = False
        while not self._stop.is_set():
            try:
                batch = self._subscription.next(self.timeout_s)
            except BusClosed:
                return
            except BusUnavailable as error:
                if not outage:
                    log.warning("topic %s: the bus is unreachable, retrying: %s", self.topic, error)
                outage = True
                continue
            if outage:
                log.info("topic %s: the bus is back, reading after %s", self.topic, self.cursor)
                outage = False
                batch = dataclasses.replace(batch, missed=True)  # unpublished meanwhile: catch up
            if batch.entries or batch.missed:
                try:
                    self.deliver(batch)
                except Exception:
                    log.exception("topic %s: handling the entries up to %s failed", self.topic, batch.cursor)
            if batch.closed:
                return
