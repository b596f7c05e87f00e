"""History actor: answers the gateway's questions about the past from the database.

Reads run in this actor's own thread and connection, so a slow query never delays the pipeline,
and the gateway never touches a model.
"""

from __future__ import annotations

import functools
from typing import Any

import pykka

from ubot.actors.stage import unexpected
from ubot.messages import GetCandles, GetGlobal, GetQuotes, ResolveCoin
from ubot.models.alerts import AlertStore
from ubot.models.db import close_connection
from ubot.models.history import History
from ubot.notify.messages import GetAlerts


class HistoryActor(pykka.ThreadingActor):
    def __init__(self, history: History, alerts: AlertStore | None = None) -> None:
        """``alerts``: in a gateway role (no Notifier in the process), ``GetAlerts`` is answered
        here, from the alert tables."""
        super().__init__()
        self.history = history
        self.alerts = alerts

    def on_stop(self) -> None:
        close_connection()

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
        return self.alerts.alerts(query.user_id, query.since_ms, query.strategy_id, query.limit, query.before)
