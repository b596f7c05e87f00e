"""Reading history back: raw quotes, global metrics, candles, coins. Indexed range queries only."""

from __future__ import annotations

import math
from typing import Any

from peewee import Database, fn

from ubot.market.candles import TIMEFRAMES
from ubot.market.snapshot import GLOBAL_FIELDS, GLOBAL_INT_FIELDS, INT_FIELDS, NUMERIC_FIELDS
from ubot.models.candle_blocks import BlockReader
from ubot.models.candle_store import CandleStore
from ubot.models.tables import Candle, Coin, GlobalMetric, Quote
from ubot.timeutil import iso_from_ms


def _range(field: Any, start_ms: int | None, end_ms: int | None) -> Any:
    condition = True
    if start_ms is not None:
        condition = field >= start_ms
    if end_ms is not None:
        condition = (field <= end_ms) if condition is True else (condition & (field <= end_ms))
    return condition


#: A chart's candle: open time, open, high, low, close.
CHART_FIELDS = ("open_time", "open", "high", "low", "close")


class History:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._blocks = BlockReader(db)

    def coin(self, key: str) -> tuple[int, str] | None:
        """(id, symbol) of a stored coin by numeric id, or by symbol in any case. A symbol shared by
        several coins means the best-ranked one by its latest stored quote (then the lowest id)."""
        if key.isdigit():
            row = Coin.select(Coin.id, Coin.symbol).where(Coin.id == int(key)).tuples().first()
            return (row[0], row[1]) if row else None
        candidates = list(
            Coin.select(Coin.id, Coin.symbol)
            .where(fn.UPPER(Coin.symbol) == key.upper())  # CMC has symbols like "tBTC"
            .order_by(Coin.id)
            .tuples()
        )
        if len(candidates) <= 1:
            return candidates[0] if candidates else None

        def latest_rank(coin_id: int) -> float:
            rank = (
                Quote.select(Quote.rank)
                .where(Quote.coin == coin_id)
                .order_by(Quote.ts.desc(), Quote.snapshot.desc())
                .limit(1)
                .scalar()
            )
            return math.inf if rank is None else rank

        return min(candidates, key=lambda c: (latest_rank(c[0]), c[0]))

    def candles(
        self, coin_id: int, timeframe: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[tuple[int, float, float, float, float]]:
        """Closed candles, ascending: the latest ``limit`` within [start, end]. The stored ones, read
        as the dry run and the Scanner's seeds read them (:class:`~ubot.models.candle_blocks.BlockReader`:
        packed blocks and rows) over the span of the ``limit`` newest without a gap, widened while
        gaps leave fewer; and those not written yet, rebuilt from the stored quotes
        (``models/candle_store.py``)."""
        end = None if end_ms is None else end_ms + 1
        pending = CandleStore(self._db).replay([coin_id]).pending(timeframe, start_ms, end)
        rows = {row[0]: row for row in self._stored_candles(coin_id, timeframe, start_ms, end_ms, limit)}
        for _, open_time, o, h, low, c, *_ in pending.rows():
            rows.setdefault(open_time, (open_time, o, h, low, c))
        return sorted(rows.values())[-limit:]

    def _stored_candles(
        self, coin_id: int, timeframe: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[tuple[int, float, float, float, float]]:
        """The latest ``limit`` stored candles within [start, end], ascending."""
        where = (Candle.coin == coin_id) & (Candle.timeframe == timeframe)
        if start_ms is not None:
            where &= Candle.open_time >= start_ms
        if end_ms is not None:
            where &= Candle.open_time <= end_ms
        newest = Candle.select(fn.MAX(Candle.open_time)).where(where).scalar()
        if newest is None or limit < 1:
            return []
        oldest = Candle.select(fn.MIN(Candle.open_time)).where(where).scalar()
        span = limit * TIMEFRAMES[timeframe]
        while True:
            after = max(oldest, newest + 1 - span)
            _, columns = self._blocks.columns(timeframe, [coin_id], after, newest + 1, CHART_FIELDS)
            if len(columns["open_time"]) >= limit or after == oldest:
                break
            span *= 4
        return list(zip(*(columns[name][-limit:].tolist() for name in CHART_FIELDS), strict=True))

    def quotes(
        self, coin_id: int, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[dict[str, Any]]:
        fields = [Quote.ts] + [getattr(Quote, name) for name in NUMERIC_FIELDS]
        query = (
            Quote.select(*fields)
            .where((Quote.coin == coin_id) & _range(Quote.ts, start_ms, end_ms))
            .order_by(Quote.ts.desc(), Quote.snapshot.desc())  # a quote's time repeats while stale
            .limit(limit)
            .tuples()
        )
        names = ("timestamp", *NUMERIC_FIELDS)
        rows = []
        for row in reversed(list(query)):
            doc = dict(zip(names, row, strict=True))
            doc["timestamp"] = iso_from_ms(doc["timestamp"])
            for name in INT_FIELDS:
                if doc[name] is not None:
                    doc[name] = int(doc[name])
            rows.append(doc)
        return rows

    def global_metrics(self, start_ms: int | None, end_ms: int | None, limit: int) -> list[dict[str, Any]]:
        fields = [GlobalMetric.ts] + [getattr(GlobalMetric, name) for name in GLOBAL_FIELDS]
        query = (
            GlobalMetric.select(*fields)
            .where(_range(GlobalMetric.ts, start_ms, end_ms))
            .order_by(GlobalMetric.ts.desc(), GlobalMetric.snapshot.desc())
            .limit(limit)
            .tuples()
        )
        names = ("timestamp", *GLOBAL_FIELDS)
        rows = []
        for row in reversed(list(query)):
            doc = dict(zip(names, row, strict=True))
            doc["timestamp"] = iso_from_ms(doc["timestamp"])
            for name in GLOBAL_INT_FIELDS:
                if doc[name] is not None:
                    doc[name] = int(doc[name])
            rows.append(doc)
        return rows
