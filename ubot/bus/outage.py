"""A "bus down" state, so a caller on a hot path (the engine's tick publishing to Redis) never
stalls on a bus that is not there: plain logic on an injected clock, no threads, no I/O.

* Up: every call goes through (:meth:`Outage.allow` is true).
* A call that failed after its retries (:meth:`Outage.failed`) puts the bus down: logged once, with
  the error. While down, calls are refused at once (:meth:`Outage.allow` false: the caller raises
  ``BusUnavailable`` without touching the network) except one *probe* per ``retry_s``, which is
  tried once, without retries.
* The first call that succeeds (a probe, or a reader's ``XREAD`` on its own thread)
  (:meth:`Outage.recovered`) puts it up again: logged once, with how long it lasted and how many
  calls were refused meanwhile.

So an outage costs the tick path one failed call, then at most one single-attempt probe per
``retry_s`` (a refused connection fails at once; an unreachable host costs the connect timeout).
"""

from __future__ import annotations

import logging
import threading

from ubot.clocks import Clock, SystemClock

log = logging.getLogger(__name__)

#: Seconds between two probes of a bus that is down.
DEFAULT_RETRY_S = 1.0


class Outage:
    def __init__(self, name: str, retry_s: float = DEFAULT_RETRY_S, clock: Clock | None = None) -> None:
        self.name = name
        self.retry_s = retry_s
        self.clock = clock or SystemClock()
        self.down_since: float | None = None
        self.refused = 0  # calls refused in the current outage
        self._next_probe = 0.0
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def allow(self) -> bool:
        """May a call go to the network now? False while down, except one probe per ``retry_s``
        (then the caller tries once, without retries: :meth:`probing`)."""
        with self._lock:
            if self.down_since is None:
                return True
            now = self.clock.now()
            if now >= self._next_probe:
                self._next_probe = now + self.retry_s
                return True
            self.refused += 1
            return False

    def failed(self, error: str) -> None:
        """A call failed after its retries: the bus is down (logged at the first failure only)."""
        with self._lock:
            now = self.clock.now()
            self._next_probe = now + self.retry_s
            if self.down_since is not None:
                return
            self.down_since, self.refused = now, 0
        log.warning(
            "%s is down (%s): calls are refused at once, retried every %g s, until it answers",
            self.name,
            error,
            self.retry_s,
        )

    def recovered(self) -> None:
        """A call succeeded: the bus is up (logged when it ends an outage)."""
        with self._lock:
            if self.down_since is None:
                return
            lasted, refused = self.clock.now() - self.down_since, self.refused
            self.down_since, self.refused = None, 0
        log.warning("%s is back after %.1f s (%d calls refused meanwhile)", self.name, lasted, refused)
