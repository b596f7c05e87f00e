"""History actor: answers the gateway's questions about the past from the database.

Reads run in this actor's own thread and connection, so a slow query never delays the pipeline,
and the gateway never touches a model.
"""

from __future__ import annotations

from typing import Any

import pykka

from ubot.messages import GetCandles, GetGlobal, GetQuotes, ResolveCoin
from ubot.models.db import close_connection
from ubot.models.history import History


class HistoryActor(pykka.ThreadingActor):
    def __init__(self, history: History) -> None:
        super().__init__()
        self.history = history

    def on_stop(self) -> None:
        close_connection()

    def on_receive(self, message: Any) -> Any:
        h = self.history
        if isinstance(message, ResolveCoin):
            return h.coin(message.key)
        if isinstance(message, GetCandles):
            return h.candles(
                message.coin_id, message.timeframe, message.start_ms, message.end_ms, message.limit
            )
        if isinstance(message, GetQuotes):
            return h.quotes(message.coin_id, message.start_ms, message.end_ms, message.limit)
        if isinstance(message, GetGlobal):
            return h.global_metrics(message.start_ms, message.end_ms, message.limit)
        raise TypeError(f"history: unexpected message {message!r}")
