"""The gateway's protection, built from the settings in one call: request ids, client address, access
log, CORS, security headers and rate limits (see each module).

Wiring (``create_app``)::

    protection = protection_middleware(settings.http, settings.limits)
    middleware = [
        *protection.before_auth,   # RequestId, ClientAddress, AccessLog, [CORS], SecurityHeaders,
                                   # [ClientRateLimit]
        BodyLimit(max_body_bytes),
        RequireJSON(),
        Authentication(authenticate),
        *protection.after_auth,    # [UserRateLimit]: needs req.context.user_id
    ]

Why this order (Falcon runs ``process_request`` and ``process_resource`` in list order,
``process_response`` in reverse):

* ``RequestId`` first: the id exists before anything logs, and is reset last.
* ``AccessLog`` next: its ``process_response`` runs after all the others, so it logs the final
  status, and the 429s, 413s and 401s of the checks after it.
* ``CORS`` before ``Authentication``: it answers preflights in ``process_resource`` before a 401
  could, and adds its headers to every response, errors included.
* ``ClientRateLimit`` before ``BodyLimit``/``RequireJSON``: a flood is refused at the lowest cost.
* ``UserRateLimit`` after ``Authentication``, whose ``process_resource`` sets ``req.context.user_id``.

And once per process, after logging is configured (``logging.basicConfig(format=LOG_FORMAT...)``):
:func:`ubot.http.requestid.install_request_id_logging`.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, NamedTuple

from ubot.clocks import Clock
from ubot.http.accesslog import AccessLog
from ubot.http.clientaddr import ClientAddress
from ubot.http.cors import CORS
from ubot.http.headers import SecurityHeaders
from ubot.http.limits import Budget
from ubot.http.ratelimit import ClientRateLimit, UserRateLimit
from ubot.http.requestid import RequestId


class Protection(NamedTuple):
    before_auth: list[Any]  # before BodyLimit, RequireJSON and Authentication
    after_auth: list[Any]  # after Authentication


def protection_middleware(
    http: SimpleNamespace, limits: SimpleNamespace, clock: Clock | None = None
) -> Protection:
    """``http`` and ``limits`` are ``settings.http`` and ``settings.limits`` (:mod:`ubot.config`).
    ``clock``: where time comes from (tests pass a :class:`~ubot.clocks.FakeClock`); by default the
    rate limits use the monotonic clock and the access log the wall clock."""
    if clock is None:
        now, wall, timer = time.monotonic, time.time, time.perf_counter
    else:
        now = wall = timer = clock.now
    before: list[Any] = [
        RequestId(),
        ClientAddress(http.trusted_proxies),
        AccessLog(now=wall, timer=timer),
    ]
    if http.cors_origins:
        before.append(CORS(http.cors_origins))
    before.append(SecurityHeaders(hsts=http.hsts))
    after: list[Any] = []
    if limits.enabled:
        per_client = Budget(limits.per_client_rate, limits.per_client_burst)
        login = Budget(limits.login_per_minute / 60, limits.login_burst)
        before.append(ClientRateLimit(per_client, login, now=now))
        after.append(UserRateLimit(Budget(limits.per_user_rate, limits.per_user_burst), now=now))
    return Protection(before, after)
