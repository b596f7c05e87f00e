"""The payloads of the events published into the :class:`~ubot.stream.hub.StreamHub`.

``snapshot`` (public, once per tick) tells clients that a new snapshot is served, without carrying
it (5,000 coins per tick per client would be the whole snapshot again)::

    {"timestamp": "2024-10-16T00:05:00.000Z",   # the snapshot's time, as /v1/snapshot writes it
     "coins": 5000,                               # how many coins it has
     "etag": "\"1a2b3c4d-5f00\"",                 # the ETag of /v1/snapshot, when the publisher knows it
     "top": [{"id": 1, "symbol": "BTC", "rank": 1, "price": 67125.5, "percent_change_24h": 1.25},
             ...]}                                # the 10 best ranked coins (unranked ones never)

A client that wants more re-fetches ``/v1/snapshot`` (with ``If-None-Match: <etag>``). Missing
numbers (CoinMarketCap's nulls) are ``null``.

``alert`` (visible to its user only: the Notifier publishes it with ``user_id=``) carries the alert
as the webhook body has it (``ubot.notify.outbox.alert_document``), published once it is written and
before it is delivered. :func:`alert_event` is the item of ``GET /v1/me/alerts``: the same members
the two share (id, strategy, coin, times, values, text), plus each channel's delivery status.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ubot.jsonsafe import json_number, json_values
from ubot.market.snapshot import Snapshot
from ubot.notify.messages import AlertView
from ubot.timeutil import iso_from_ms

TOP_N = 10


def snapshot_event(snapshot: Snapshot, etag: str | None = None, top: int = TOP_N) -> dict[str, Any]:
    """The data of the ``snapshot`` event for ``snapshot`` (see the module docstring)."""
    ranks = snapshot.column("rank")
    ranked = np.flatnonzero(~np.isnan(ranks))
    best = ranked[np.argsort(ranks[ranked], kind="stable")[:top]].tolist()
    prices = snapshot.column("price")
    changes = snapshot.column("percent_change_24h")
    doc: dict[str, Any] = {"timestamp": iso_from_ms(snapshot.timestamp_ms), "coins": len(snapshot)}
    if etag is not None:
        doc["etag"] = etag
    doc["top"] = [
        {
            "id": int(snapshot.ids[i]),
            "symbol": snapshot.symbols[i],
            "rank": int(ranks[i]),
            "price": json_number(prices[i]),
            "percent_change_24h": json_number(changes[i]),
        }
        for i in best
    ]
    return doc


def alert_event(alert: AlertView) -> dict[str, Any]:
    """One alert as ``GET /v1/me/alerts`` lists it and the ``alert`` event carries it."""
    return {
        "id": alert.id,
        "strategy_id": alert.strategy_id,
        "strategy_name": alert.strategy_name,
        "coin_id": alert.coin_id,
        "symbol": alert.symbol,
        "timeframe": alert.timeframe,
        "fired_at": iso_from_ms(alert.fired_at_ms),
        "values": json_values(alert.values),
        "text": alert.text,
        "replayed": alert.replayed,
        "deliveries": [
            {
                "channel": d.channel,
                "status": d.status,
                "attempts": d.attempts,
                "detail": d.detail,
                "sent_at": None if d.sent_at_ms is None else iso_from_ms(d.sent_at_ms),
            }
            for d in alert.deliveries
        ],
    }
