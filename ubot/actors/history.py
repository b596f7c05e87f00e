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
from ubot.models.db import close_connection
from ubot.models.history import History


class HistoryActor(pykka.ThreadingActor):
    def __init__(self, history: History) -> None:
        super().__init__()
        self.history = history

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
