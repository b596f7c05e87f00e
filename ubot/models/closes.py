"""Every stored closed candle of a timeframe, for the Scanner's indicator state (``scan/history.py``).

Read group of coins by group of coins, each coin's candles whole and oldest first, so that memory stays
bounded (about ``rows`` candles at a time) however long the history. Each group goes through the
reader the dry run uses (:class:`~ubot.models.candle_blocks.BlockReader`): the packed blocks where
there are some, the candle rows for the rest. Only (coin, open time, close) are filled in; closed
candles only (those opened before ``before_ms``): the open candle is not read. The candles not
written yet are added, rebuilt from the stored quotes (``models/candle_store.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np
from peewee import fn

from ubot.market.candles import CandleRows
from ubot.models.candle_blocks import BlockReader
from ubot.models.candle_store import CandleStore, with_pending
from ubot.models.db import database
from ubot.models.tables import Candle

#: Candles read per group of coins (whose candles add up to about this many), and coins at most.
ROWS = 250_000
COINS = 1_000


def closed_candles(
    timeframe: str, after_ms: int | None, before_ms: int, rows: int = ROWS
) -> Iterator[CandleRows]:
    """The closed candles of ``timeframe`` opened in ``[after_ms, before_ms)`` (``after_ms`` None: since
    the first one stored), a group of whole coins at a time."""
    pending = CandleStore(database).replay().pending(timeframe, after_ms, before_ms)  # first: see there
    where = (Candle.timeframe == timeframe) & (Candle.open_time < before_ms)
    if after_ms is not None:
        where &= Candle.open_time >= after_ms
    query = Candle.select(Candle.coin, fn.COUNT(Candle.coin)).where(where).group_by(Candle.coin).tuples()
    counts = Counter(dict(query))
    counts.update(pending.coin_ids.tolist())
    reader = BlockReader(database)
    after = 0 if after_ms is None else after_ms
    group: list[int] = []
    size = 0
    for coin, count in sorted(counts.items()):
        group.append(coin)
        size += count
        if size >= rows or len(group) >= COINS:
            yield _read(reader, timeframe, group, after, before_ms, pending)
            group, size = [], 0
    if group:
        yield _read(reader, timeframe, group, after, before_ms, pending)


def _read(
    reader: BlockReader, timeframe: str, coins: list[int], after_ms: int, before_ms: int, pending: CandleRows
) -> CandleRows:
    ids, columns = reader.columns(timeframe, coins, after_ms, before_ms, ("open_time", "close"))
    stored = _thin(timeframe, ids, columns["open_time"], columns["close"])
    mine = pending.take(np.isin(pending.coin_ids, coins))
    if not len(mine):
        return stored
    return with_pending(stored, _thin(timeframe, mine.coin_ids, mine.open_time, mine.close))


def _thin(timeframe: str, ids: np.ndarray, times: np.ndarray, close: np.ndarray) -> CandleRows:
    n = len(ids)
    zeros = np.zeros(n, dtype=np.int64)
    nans = np.full(n, np.nan)
    return CandleRows(timeframe, ids, times, nans, nans, nans, close, zeros, zeros, zeros)
