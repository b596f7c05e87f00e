"""History actor: answers the gateway's questions about the past from the database.

Reads run in this actor's own thread and connection (a :class:`~ubot.actors.stage.Reader`), so a
slow query never delays the pipeline, and the gateway never touches a model.
"""

from __future__ import annotations

import functools
from typing import Any

from ubot.actors.stage import Reader, unexpected
from ubot.messages import GetCandles, GetGlobal, GetOpenCandle, GetQuotes, ResolveCoin
from ubot.models.alerts import AlertStore
from ubot.models.candle_store import CandleStore
from ubot.models.history import History
from ubot.notify.messages import GetAlerts


class HistoryActor(Reader):
    def __init__(
        self, history: History, alerts: AlertStore | None = None, candles: CandleStore | None = None
    ) -> None:
        """In a gateway role (no Notifier, no Container in the process): ``alerts`` answers
        ``GetAlerts`` from the alert tables, ``candles`` answers ``GetOpenCandle`` from the stored
        quotes and candles."""
        super().__init__()
        self.history = history
        self.alerts = alerts
        self.candles = candles

    @functools.singledispatchmethod
    def on_receive(self, message: Any) -> Any:
        unexpected(self, message)

    @on_receive.register
    def _coin(self, query: ResolveCoin) -> Any:
        return self.history.coin(query.key)

    @on_receive.register
    def _candles(self, query: GetCandles) -> Any:
        return self.history.candles(query.coin_id, query.timeframe, query.start_ms, query.end_ms, query.limit)

    @on_receive.register
    def _quotes(self, query: GetQuotes) -> Any:
        return self.history.quotes(query.coin_id, query.start_ms, query.end_ms, query.limit)

    @on_receive.register
    def _global(self, query: GetGlobal) -> Any:
        return self.history.global_metrics(query.start_ms, query.end_ms, query.limit)

    @on_receive.register
    def _alerts(self, query: GetAlerts) -> Any:
        if self.alerts is None:
            unexpected(self, query)
        assert self.alerts is not None
        q = query
        return self.alerts.alerts(q.user_id, q.since_ms, q.strategy_id, q.limit, q.before, q.coin_id)

    @on_receive.register
    def _open_candle(self, query: GetOpenCandle) -> tuple | None:
        """``(open_time, open, high, low, close)``, as the Container answers it, or None."""
        if self.candles is None:
            unexpected(self, query)
        assert self.candles is not None
        rows = self.candles.open_candle(query.coin_id, query.timeframe)
        if not len(rows):
            return None
        return (
            int(rows.open_time[0]),
            float(rows.open[0]),
            float(rows.high[0]),
            float(rows.low[0]),
            float(rows.close[0]),
        )
