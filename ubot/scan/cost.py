"""What a strategy costs the Scanner, in *series-coins*, and the budgets it is checked against.

Since issue 14 the Scanner keeps each timeframe's indicators as incremental state (``scan/history.py``,
maths in ``rules/incremental.py``): one state per distinct indicator series and coin, advanced once
per closed candle and read once per tick in O(1), whatever the period. Strategies whose conditions
differ only in their literals are evaluated as one group (``scan/groups.py``). Measured on the
2-core development machine (1,000 coins, 1,000 stored 1m candles each, ``docs/limits.md``):

* per tick, the work grows with **distinct series x coins**: about 0.2 µs per series-coin (500
  series over 1,000 coins: 97 ms a tick, 50 series: 10 ms), and not with the period (``sma(200)``
  costs what ``sma(2)`` does);
* the history enters once, when a series first appears: its state is seeded from every stored
  closed candle of the coin, at most about 0.1 µs per series-coin and candle since the recursions
  run in C (``bench/seeding.py``: 1,000 coins x 5,000 candles, ``rsi(14)`` 0.24 s, ``sma(200)``
  0.42 s; one candle at a time it was 0.12-0.4 µs: 500 series x 1,000 coins x 1,000 candles 58 s),
  so a budget on series-coins bounds that seed too, in proportion to the history stored;
* memory: a few floats per series-coin, plus, per coin and timeframe, a ring of the newest closes
  as long as the longest window (``sma``, Bollinger bands, ``highest``/``lowest``, ``change``).

So a strategy's cost is ``coins x (1 + series)``: ``coins`` the coins in its scope (``top_n``, or
the number of its ``symbols``), ``series`` the distinct indicator states its condition reads
(``sma(20)`` and both Bollinger bands of 20 share one state, as do ``macd()`` and
``macd_signal()``: :func:`ubot.rules.incremental.state_key`), and the 1 its own evaluation over
those coins. It is computed from the stored columns (the ``indicators`` derived from the condition
when it is saved, and the scope), so no parse is needed to add up a user's or the server's strategies.
The sum over strategies counts a series shared by two strategies twice: an upper bound, and one that
a strategy's owner can predict (another user's strategies never change what theirs cost).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from ubot.rules.incremental import state_key
from ubot.rules.language import IndicatorCall

#: ``[scanner] user_budget``: a user's enabled strategies, in series-coins. 50 strategies with one
#: indicator each over the top 1,000 coins fit (50 x 1,000 x 2); at the budget a tick's scan takes
#: about 20 ms, and a fresh seed from 1,000 stored candles took about 20 s (bench/abuse.py) when
#: seeds folded one candle at a time; several times less since they run in C.
USER_BUDGET = 100_000
#: ``[scanner] server_budget``: everyone's enabled strategies, in series-coins: ten users at their
#: budget, about 200 ms of scan work a tick on 2 cores (the target is 250 ms), before any sharing.
SERVER_BUDGET = 1_000_000

_CALL = re.compile(r"([a-z_]+)\((.*)\)")


@dataclass(frozen=True)
class Budgets:
    """Per user and for the whole server, in series-coins (``[scanner] user_budget``, ``server_budget``)."""

    user: int = USER_BUDGET
    server: int = SERVER_BUDGET


@dataclass(frozen=True)
class Cost:
    """A strategy's cost: ``coins x (1 + series)`` series-coins."""

    series: int
    coins: int

    @property
    def total(self) -> int:
        return self.coins * (1 + self.series)

    def explain(self) -> str:
        """E.g. ``11,000 (10 indicator series + 1, x 1,000 coins)``."""
        series = f"{self.series} indicator series" if self.series != 1 else "1 indicator series"
        return f"{self.total:,} ({series} + 1, x {self.coins:,} coins)"


def call_of(text: str) -> IndicatorCall:
    """An indicator call from its canonical text (``"bb_upper(20, 2)"``), as strategies store them."""
    match = _CALL.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an indicator call: {text!r}")
    args = tuple(float(a) if "." in a or "e" in a else int(a) for a in match[2].split(",") if a.strip())
    return IndicatorCall(match[1], args)


def series(calls: Iterable[IndicatorCall | str]) -> int:
    """The distinct indicator states that ``calls`` read."""
    return len({state_key(call if isinstance(call, IndicatorCall) else call_of(call)) for call in calls})


def cost_of(
    indicators: Iterable[IndicatorCall | str], symbols: Sequence[str] | None, top_n: int | None
) -> Cost:
    """The cost of a strategy reading ``indicators`` over its scope (``symbols``, or the top ``top_n``)."""
    coins = len(symbols) if symbols is not None else (top_n or 0)
    return Cost(series(indicators), coins)


class CostBook(Mapping[int, Cost]):
    """Each planned strategy's cost (strategy id -> :class:`Cost`), with their sum and the costliest
    kept as strategies come and go, so ``/health``'s figures do not go over every strategy each tick
    (sorting 100,000 costs took tens of ms a tick)."""

    def __init__(self) -> None:
        self._costs: dict[int, Cost] = {}
        self.total = 0
        self._costliest: list[tuple[int, Cost]] | None = None

    def __getitem__(self, strategy_id: int) -> Cost:
        return self._costs[strategy_id]

    def __iter__(self) -> Iterator[int]:
        return iter(self._costs)

    def __len__(self) -> int:
        return len(self._costs)

    def set(self, strategy_id: int, cost: Cost) -> None:
        self.drop(strategy_id)
        self._costs[strategy_id] = cost
        self.total += cost.total
        self._costliest = None

    def drop(self, strategy_id: int) -> None:
        cost = self._costs.pop(strategy_id, None)
        if cost is not None:
            self.total -= cost.total
            self._costliest = None

    def costliest(self, n: int) -> list[tuple[int, Cost]]:
        """The ``n`` costliest (id, cost), costliest first, the lower id first among equals;
        computed again only after a change."""
        if self._costliest is None or len(self._costliest) < min(n, len(self._costs)):
            self._costliest = heapq.nsmallest(
                n, self._costs.items(), key=lambda item: (-item[1].total, item[0])
            )
        return self._costliest[:n]
