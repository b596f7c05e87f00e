"""``GET /v1/me/alerts``: the authenticated user's alerts, newest first, from the Notifier actor.

Query parameters (each refused with a 400 naming it):

* ``since``: only alerts fired at or after this time (ISO-8601 UTC or epoch milliseconds);
* ``strategy``: only this strategy's alerts (its id);
* ``coin``: only the alerts about this coin (its CoinMarketCap id, as ``coin_id`` of an alert);
* ``before``: only alerts older than this one (an id): the next page back, past the newest 500;
* ``limit``: at most this many, 1..500 (default 50).

Each item is ``alert_event(view)`` (:mod:`ubot.stream.events`): values, text, and each channel's
delivery status (the ``alert`` event of ``/v1/stream`` has the same members but the deliveries,
which have not happened when it is published).
"""

from __future__ import annotations

import falcon
import msgspec

from ubot.http import shapes
from ubot.http.api import operation
from ubot.http.gateway import Gateway
from ubot.stream.events import alert_event


class AlertsResource:
    auth_required = True

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @operation(
        "Your alerts, newest first, with each channel's delivery status",
        {
            200: ("the alerts", shapes.Alerts),
            503: "the Notifier did not answer in time, or alerts are not enabled",
        },
        query=shapes.AlertsQuery,
        headers={200: {"Cache-Control": {"schema": {"type": "string"}}}},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = req.context.query
        views = self.gateway.alerts(
            req.context.user_id,
            shapes.ms(query.since),
            None if query.strategy is msgspec.UNSET else query.strategy,
            query.limit,
            before=None if query.before is msgspec.UNSET else query.before,
            coin_id=None if query.coin is msgspec.UNSET else query.coin,
        )
        resp.cache_control = ["no-store"]
        resp.media = {"alerts": [alert_event(view) for view in views]}
