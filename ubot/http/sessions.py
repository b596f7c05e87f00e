"""A gateway process's sessions: the token check on its own read path, behind a short cache
(``ubot/users/sessions.py``), and revocations carried between gateway processes by the bus.

Sessions ended through this process are dropped from its cache before the request is answered,
then published as :class:`~ubot.bus.SessionsRevoked` on the ``sessions`` topic; a :class:`Relay`
follows that topic and drops what the other gateways ended (its own messages too: harmless). If
the bus reports missed entries, the whole cache is cleared; while the bus is unreachable,
``[accounts] session_cache_s`` bounds how long another gateway may still accept a revoked token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ubot.bus import SESSIONS, Batch, Bus, BusUnavailable, Relay, SessionsRevoked
from ubot.clocks import Clock
from ubot.users.sessions import Revoked, SessionCache, SessionReader

log = logging.getLogger(__name__)


class GatewaySessions:
    """``lookup(token_hash, now_ms)``: the live session row (``UserStore.live_session``)."""

    def __init__(self, bus: Bus, lookup: Callable[[str, int], Any], clock: Clock, ttl_s: float) -> None:
        self.bus = bus
        self.cache = SessionCache(clock, ttl_s)
        self.reader = SessionReader(lookup, self.cache, clock)
        self._relay = Relay(bus, SESSIONS, self._deliver)

    def start(self) -> GatewaySessions:
        self._relay.start()
        return self

    def stop(self) -> None:
        self._relay.stop()

    def revoked(self, revoked: Revoked) -> None:
        """Sessions ended through this process (its cache already dropped them): tell the others."""
        try:
            self.bus.publish(SESSIONS, SessionsRevoked(revoked.user_id, revoked.token_hash))
        except BusUnavailable as error:
            log.warning(
                "could not tell the other gateways that sessions of user %d ended (%s); "
                "they accept them for at most %g s more",
                revoked.user_id,
                error,
                self.cache.ttl_s,
            )

    def _deliver(self, batch: Batch) -> None:
        if batch.missed:
            self.cache.clear()
        for entry in batch.entries:
            message = entry.message
            if isinstance(message, SessionsRevoked):
                self.cache.drop(Revoked(message.user_id, message.token_hash))
