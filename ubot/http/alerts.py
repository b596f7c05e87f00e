"""``GET /v1/me/alerts``: the authenticated user's alerts, newest first, from the Notifier actor.

Query parameters (each refused with a 400 naming it):

* ``since``: only alerts fired at or after this time (ISO-8601 UTC or epoch milliseconds);
* ``strategy``: only this strategy's alerts (its id);
* ``limit``: at most this many, 1..500 (default 50).

Each item is ``alert_event(view)`` (:mod:`ubot.stream.events`): values, text, and each channel's
delivery status (the ``alert`` event of ``/v1/stream`` has the same members but the deliveries,
which have not happened when it is published).
"""

from __future__ import annotations

import falcon

from ubot.http.gateway import Gateway
from ubot.http.params import id_param, limit_param, time_param
from ubot.stream.events import alert_event

MAX_ALERTS = 500
DEFAULT_ALERTS = 50


class AlertsResource:
    auth_required = True

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        since = time_param(req, "since")
        strategy = id_param(req, "strategy")
        limit = limit_param(req, maximum=MAX_ALERTS, default=DEFAULT_ALERTS)
        views = self.gateway.alerts(req.context.user_id, since, strategy, limit)
        resp.cache_control = ["no-store"]
        resp.media = {"alerts": [alert_event(view) for view in views]}
