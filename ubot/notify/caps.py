"""Hourly caps on messages and the pause of a strategy that fires too often: plain logic, time passed
in (epoch ms), no threads, no database.

- :class:`Caps`: at most ``per_user`` messages an hour to one user's destinations and ``per_destination``
  to one destination (a channel and its address), over sliding windows. A message over a cap is not
  sent (its delivery is written ``capped``); the alerts it carried are counted, and the next message
  that goes to that destination says how many (:func:`~ubot.notify.words.skipped_line`).
- :class:`FiringLimit`: a strategy that raises more than ``max_alerts`` alerts within ``window_ms``
  is paused (disabled, with the reason shown by the API), as TradingView stops an alert that
  triggers too often; the message of the tick that crossed the limit says so.

Counts live in the Notifier's memory, loaded from the deliveries in the database by one path,
:meth:`Caps.recount`: at start every window from the last hour's deliveries; the alerts kept back
before a restart are not said again, and the firing limit's window starts empty after a restart.

Several scanner processes (``--role scanner``) write alerts of one user (each scans a share of their
strategies), each with its own Notifier: counted locally, the cap would be exceeded K times. There
the Notifier recounts, before admitting a tick's messages, the windows of the users and destinations
they go to from the deliveries in the database (:meth:`Caps.recount` of those windows only:
every process's deliveries, written before). What remains is a race between two processes admitting messages of the same user in the
same instant (between one's recount and its write, a few milliseconds): each may admit one message
the other has not counted yet, so the cap can be passed by at most K - 1 messages in that case, and
never by the whole hour's worth. Making it exact would need a lock per user held from the count to
the write's commit across processes; we chose not to take one on every alert. ``kept_back`` (the
alerts not said yet) and the firing limit stay per process: a strategy is scanned by one scanner.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

HOUR_MS = 3_600_000


class Window:
    """Amounts per key over a sliding window of ``window_ms``."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self._events: dict[Hashable, collections.deque[tuple[int, int]]] = {}
        self._totals: collections.Counter[Hashable] = collections.Counter()

    def total(self, key: Hashable, now_ms: int) -> int:
        events = self._events.get(key)
        if not events:
            return 0
        while events and events[0][0] <= now_ms - self.window_ms:
            self._totals[key] -= events.popleft()[1]
        if not events:
            del self._events[key], self._totals[key]
            return 0
        return self._totals[key]

    def add(self, key: Hashable, now_ms: int, amount: int = 1) -> None:
        self._events.setdefault(key, collections.deque()).append((now_ms, amount))
        self._totals[key] += amount

    def forget(self, key: Hashable) -> None:
        self._events.pop(key, None)
        self._totals.pop(key, None)

    def clear(self) -> None:
        self._events.clear()
        self._totals.clear()


@dataclass(frozen=True)
class Admission:
    """``sent``: the message may go; ``skipped``: the alerts kept back before it, to be said in it
    (0 when ``sent`` is false: they are counted on)."""

    sent: bool
    skipped: int = 0


class Caps:
    def __init__(self, per_user: int | None, per_destination: int | None, window_ms: int = HOUR_MS) -> None:
        """``None``: no such cap."""
        self.per_user = per_user
        self.per_destination = per_destination
        self.users = Window(window_ms)
        self.destinations = Window(window_ms)
        self.kept_back: collections.Counter[tuple[str, str]] = collections.Counter()

    def admit(self, user_id: int, channel: str, target: str, alerts: int, now_ms: int) -> Admission:
        """One message of ``alerts`` alerts to ``(channel, target)`` of ``user_id`` at ``now_ms``."""
        where = (channel, target)
        over_user = self.per_user is not None and self.users.total(user_id, now_ms) >= self.per_user
        over_destination = (
            self.per_destination is not None
            and self.destinations.total(where, now_ms) >= self.per_destination
        )
        if over_user or over_destination:
            self.kept_back[where] += alerts
            return Admission(False)
        self.users.add(user_id, now_ms)
        self.destinations.add(where, now_ms)
        return Admission(True, self.kept_back.pop(where, 0))

    def recount(
        self,
        sent: Iterable[tuple[int, str, str, int]],
        users: Iterable[int] | None = None,
        destinations: Iterable[tuple[str, str]] | None = None,
    ) -> None:
        """The windows as the database has them: ``sent`` holds the messages written in the window
        (``(user_id, channel, target, created_ms)``, oldest first), by every process; they replace
        what this process counted for ``users`` and ``destinations`` (``sent`` holds at least
        theirs); ``None``: for all of them (at start, from the last hour's deliveries)."""
        users = None if users is None else set(users)
        destinations = None if destinations is None else set(destinations)
        for window, keys in ((self.users, users), (self.destinations, destinations)):
            if keys is None:
                window.clear()
            for key in keys or ():
                window.forget(key)
        for user_id, channel, target, at_ms in sent:
            if users is None or user_id in users:
                self.users.add(user_id, at_ms)
            if destinations is None or (channel, target) in destinations:
                self.destinations.add((channel, target), at_ms)


class FiringLimit:
    def __init__(self, max_alerts: int | None, window_ms: int) -> None:
        """``max_alerts`` ``None``: strategies are never paused."""
        self.max_alerts = max_alerts
        self.window_ms = window_ms
        self.fired = Window(window_ms)

    def fire(self, strategy_id: int, alerts: int, now_ms: int) -> str | None:
        """Count ``alerts`` alerts of the strategy; the reason it is paused when they take it over the
        limit (counting starts again then), else ``None``."""
        if self.max_alerts is None:
            return None
        self.fired.add(strategy_id, now_ms, alerts)
        total = self.fired.total(strategy_id, now_ms)
        if total <= self.max_alerts:
            return None
        self.fired.forget(strategy_id)
        return paused_reason(total, self.max_alerts, self.window_ms)


def paused_reason(alerts: int, max_alerts: int, window_ms: int) -> str:
    """The reason shown for a strategy paused for firing too often."""
    minutes = max(1, round(window_ms / 60_000))
    return (
        f"paused by uBot: it raised {alerts:,} alerts within {minutes:,} minutes, more than the "
        f"{max_alerts:,} allowed ([notify] pause_after_alerts); enable it again once its condition "
        "fires less often"
    )
