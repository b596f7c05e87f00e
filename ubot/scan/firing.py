"""When a true condition becomes an alert, per (strategy, coin). Chosen per strategy:

* ``once_per_crossing`` (default): fires when the condition becomes true for a coin; not again until it
  has been false for that coin (a coin without a result, e.g. missing data, keeps its previous state).
  A new (or edited) strategy starts *armed*: the coins already true at its first evaluation are
  recorded as true without an alert, so a strategy over the top 1,000 does not open with hundreds
  of alerts; each fires at its next crossing. (The other rules fire at once for coins already true.)
  A coin that enters the scope later, already true, counts as a crossing;
* ``once``: fires for the coins true at the first tick any is, then the strategy disables itself;
* ``once_per_bar``: at most once per candle of the strategy's timeframe, while true;
* ``once_per_bar_close``: evaluated only when a candle closes, on closed candles; fires for each bar
  that closes true.

``cooldown_s`` then holds back any alert for a coin until that long after its previous one (a crossing
during the cooldown is not fired later: the condition has to become true again). Expiry is checked by
the caller. The state is small (the coins currently true, and the last alert time and bar per coin);
every change is returned as :class:`AlertState` so the Notifier writes it with the alerts, and a
restarted worker continues from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ubot.notify.messages import AlertState
from ubot.scan.spec import StrategySpec

#: The coin id of the row that says "this strategy has been evaluated" (CoinMarketCap ids start at 1).
ARMED = 0


@dataclass
class FiringState:
    armed: bool = False  # evaluated at least once (once_per_crossing)
    active: set[int] = field(default_factory=set)  # coins whose condition was true (crossing)
    fired_at: dict[int, int] = field(default_factory=dict)  # coin -> time of its last alert (ms)
    fired_bar: dict[int, int] = field(default_factory=dict)  # coin -> bar of its last alert (ms)

    @classmethod
    def restore(cls, rows: Iterable[AlertState]) -> FiringState:
        state = cls()
        for row in rows:
            if row.coin_id == ARMED:
                state.armed = row.active
                continue
            if row.active:
                state.active.add(row.coin_id)
            if row.last_fired_ms is not None:
                state.fired_at[row.coin_id] = row.last_fired_ms
            if row.last_bar_ms is not None:
                state.fired_bar[row.coin_id] = row.last_bar_ms
        return state

    def row(self, strategy_id: int, coin: int) -> AlertState:
        return AlertState(
            strategy_id, coin, coin in self.active, self.fired_at.get(coin), self.fired_bar.get(coin)
        )


def decide(
    spec: StrategySpec,
    state: FiringState,
    coin_ids: np.ndarray,
    matched: np.ndarray,
    undefined: np.ndarray,
    now_ms: int,
    bar_ms: int,
) -> tuple[list[int], list[AlertState]]:
    """The coins to alert now, and the state rows that changed. Updates ``state``."""
    true_now = coin_ids[matched].tolist()
    changed: set[int] = set()
    if spec.frequency == "once_per_crossing":
        false_now = set(coin_ids[~matched & ~undefined].tolist()) & state.active
        candidates = [c for c in true_now if c not in state.active]
        state.active.difference_update(false_now)
        state.active.update(candidates)
        changed.update(false_now)
        changed.update(candidates)
        if not state.armed:
            state.armed = True
            rows = [state.row(spec.id, coin) for coin in sorted(changed)]
            return [], [AlertState(spec.id, ARMED, True), *rows]
    elif spec.frequency in ("once_per_bar", "once_per_bar_close"):
        candidates = [c for c in true_now if state.fired_bar.get(c) != bar_ms]
    else:  # once: never again once it has fired (even if the disable has not reached it yet)
        candidates = [] if state.fired_at else true_now
    cooldown_ms = spec.cooldown_s * 1000
    fire = [
        c
        for c in candidates
        if cooldown_ms <= 0 or now_ms - state.fired_at.get(c, -cooldown_ms) >= cooldown_ms
    ]
    for coin in fire:
        state.fired_at[coin] = now_ms
        state.fired_bar[coin] = bar_ms
    changed.update(fire)
    return fire, [state.row(spec.id, coin) for coin in sorted(changed)]
