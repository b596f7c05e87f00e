"""Every stored closed candle of a timeframe, for the Scanner's indicator state (``scan/history.py``).

Read group of coins by group of coins, each coin's candles whole and oldest first, so that memory stays
bounded (about ``rows`` candles at a time) however long the history, and each group's query is a range
of the candle table's primary key (coin, timeframe, open time). Only (coin, open time, close) are
filled in; closed candles only (those opened before ``before_ms``): the open candle is not read. The
candles not written yet are added, rebuilt from the stored quotes (``models/candle_store.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from itertools import chain

import numpy as np
from peewee import fn

from ubot.market.candles import CandleRows
from ubot.models.candle_store import CandleStore, with_pending
from ubot.models.db import database
from ubot.models.tables import Candle

#: Candles read per query (a group of coins whose candles add up to about this many), and coins at
#: most (the length of the query's ``IN`` list).
ROWS = 250_000
COINS = 1_000


def _range(timeframe: str, after_ms: int | None, before_ms: int):
    where = (Candle.timeframe == timeframe) & (Candle.open_time < before_ms)
    return where if after_ms is None else where & (Candle.open_time >= after_ms)


def closed_candles(
    timeframe: str, after_ms: int | None, before_ms: int, rows: int = ROWS
) -> Iterator[CandleRows]:
    """The closed candles of ``timeframe`` opened in ``[after_ms, before_ms)`` (``after_ms`` None: since
    the first one stored), a group of whole coins at a time."""
    pending = CandleStore(database).replay().pending(timeframe, after_ms, before_ms)  # first: see there
    where = _range(timeframe, after_ms, before_ms)
    query = Candle.select(Candle.coin, fn.COUNT(Candle.coin)).where(where).group_by(Candle.coin).tuples()
    counts = Counter(dict(query))
    counts.update(pending.coin_ids.tolist())
    group: list[int] = []
    size = 0
    for coin, count in sorted(counts.items()):
        group.append(coin)
        size += count
        if size >= rows or len(group) >= COINS:
            yield _read(timeframe, where, group, pending)
            group, size = [], 0
    if group:
        yield _read(timeframe, where, group, pending)


def _read(timeframe: str, where, coins: list[int], pending: CandleRows) -> CandleRows:
    """One query; its rows go from the driver's cursor into one float64 matrix in C (no per-row
    Python work beyond the driver's own tuple). Coin ids and epoch-millisecond open times are whole
    numbers far below 2**53, so they come back exact."""
    query = (
        Candle.select(Candle.coin, Candle.open_time, Candle.close)
        .where(where & Candle.coin.in_(coins))
        .order_by(Candle.coin, Candle.open_time)
    )
    sql, params = query.sql()
    found = database.execute_sql(sql, params).fetchall()
    n = len(found)
    matrix = np.fromiter(chain.from_iterable(found), dtype=np.float64, count=3 * n).reshape(n, 3)
    del found
    ids, times, close = matrix[:, 0].astype(np.int64), matrix[:, 1].astype(np.int64), matrix[:, 2].copy()
    stored = _thin(timeframe, ids, times, close)
    mine = pending.take(np.isin(pending.coin_ids, coins))
    if not len(mine):
        return stored
    return with_pending(stored, _thin(timeframe, mine.coin_ids, mine.open_time, mine.close))


def _thin(timeframe: str, ids: np.ndarray, times: np.ndarray, close: np.ndarray) -> CandleRows:
    n = len(ids)
    zeros = np.zeros(n, dtype=np.int64)
    nans = np.full(n, np.nan)
    return CandleRows(timeframe, ids, times, nans, nans, nans, close, zeros, zeros, zeros)
