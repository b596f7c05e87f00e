"""What a strategy can be about and sent on, as the UserManager checks it when a strategy is saved
(``UserManager(channels=..., market=...)``), so that a strategy that can never deliver is refused
with a 422 naming why instead of being accepted and staying silent:

* a channel must be one this server has (``[notify]``, ``ubot/notify/registry.py``): the error
  names the setting that would turn it on;
* ``symbols`` must be coins of the market this server fetches: the error names the unknown ones;
* ``top_n`` must be at most the number of coins fetched (``[market] limit``).

The market is the latest snapshot's, kept by :class:`LatestMarket` (the Container calls it after
each tick). Before the first snapshot after a start nothing is known yet: ``symbols`` and ``top_n``
are then checked against their limits only (the schema's), as a refusal would be a guess. A coin
that later leaves the market is reported by the scan (the strategy's ``last_error``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ubot.market.snapshot import Snapshot
from ubot.market.view import SnapshotView
from ubot.messages import Candled


@dataclass(frozen=True)
class KnownMarket:
    symbols: frozenset[str]  # upper case
    coins: int


class LatestMarket:
    """The symbols and coin count of the latest snapshot. Read from the UserManager's thread and
    written from the Container's: each update is one reference swap."""

    def __init__(self) -> None:
        self._known: KnownMarket | None = None

    def __call__(self) -> KnownMarket | None:
        return self._known

    def update(self, snapshot: Snapshot) -> None:
        self._known = KnownMarket(frozenset(s.upper() for s in snapshot.symbols), len(snapshot))

    def then(
        self, publish: Callable[[Candled, SnapshotView], Any] | None
    ) -> Callable[[Candled, SnapshotView], None]:
        """A Container publish hook (``publish(candled, view)``): update, then ``publish`` (if any)."""

        def hook(candled: Candled, view: SnapshotView) -> None:
            self.update(candled.snapshot)
            if publish is not None:
                publish(candled, view)

        return hook
