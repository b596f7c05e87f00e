"""Rate limits: per client address, per authenticated user, and a stricter one for login and sign-up.

Over budget: 429 in the uniform JSON error shape, with ``Retry-After`` (whole seconds, >= 1).

* :class:`ClientRateLimit` (``process_request``, before the body checks and authentication, so a
  flood costs as little as possible): every request from one client address spends a token; on top,
  ``POST /v1/sessions`` (login) and ``POST /v1/users`` (sign-up) each spend one from a second, much
  smaller budget: one for logins and one for sign-ups, of the same size, so that sign-ups (failed
  ones included) never use up the logins of an address. The address comes from :mod:`ubot.http.clientaddr`
  (``X-Forwarded-For`` only from trusted proxies). IPv6 clients are counted per /64 network: one
  host usually holds a whole /64, and could otherwise rotate through its addresses.
* :class:`UserRateLimit` (``process_resource``): must come AFTER
  :class:`~ubot.http.middleware.Authentication` in the middleware list, which sets
  ``req.context.user_id`` in its own ``process_resource`` (middleware runs in list order). Each
  authenticated request also spends a token of its user's budget, whatever address it comes from.

Not limited: ``/health`` (monitoring polls it), ``/openapi.json`` and the dashboard's files under
``/ui/`` (static, served from memory: a cold load of the page fetches a dozen of them at once, and a
few reloads in a row must not leave the page without one of its modules); see :data:`EXEMPT_PATHS`
and :data:`EXEMPT_PREFIXES`.

Default budgets (``[limits]`` in settings.ini), and why:

* per client 20 requests/s, bursts of 40: a browser opening the app fires a dozen or two requests at
  once (snapshot, settings, strategies, alerts, a few candle series) and then a few a minute; a
  script polling every second is far below. 20/s sustained from one address is a loop, not a user,
  and it still leaves most of the gateway's pool of threads to everyone else.
* per user 10/s, bursts of 20, on top: a token used from many addresses (a leaked token, a
  distributed script) is held to half of one client's budget; a real user never gets near.
* login 5 a minute, bursts of 10, per address, and sign-up the same apart: each attempt costs ~140 ms of argon2id in
  the UserManager actor, whose one mailbox serves every account request. Ten attempts in a row cover
  any typing mistakes; then one every 12 s keeps online password guessing slow and the UserManager
  free for others.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

import falcon

from ubot.http.clientaddr import client_address, parse_ip
from ubot.http.limits import DEFAULT_MAX_KEYS, Budget, TokenBuckets, retry_after

EXEMPT_PATHS = frozenset({"/health", "/openapi.json"})
EXEMPT_PREFIXES = ("/ui/",)


def _exempt(path: str) -> bool:
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


#: route -> what its stricter budget is for; routes for the same purpose share one budget (a login
#: for a program and one for the dashboard spend the same allowance)
LOGIN_ROUTES = {
    ("POST", "/v1/sessions"): "to log in",
    ("POST", "/v1/sessions/browser"): "to log in",
    ("POST", "/v1/users"): "to sign up",
}

DEFAULT_PER_CLIENT = Budget(rate=20.0, burst=40)
DEFAULT_PER_USER = Budget(rate=10.0, burst=20)
DEFAULT_LOGIN = Budget(rate=5 / 60, burst=10)


class ClientRateLimit:
    nonblocking = True  # runs on the event loop (ubot/http/asgi.py)

    def __init__(
        self,
        per_client: Budget = DEFAULT_PER_CLIENT,
        login: Budget = DEFAULT_LOGIN,
        *,
        now: Callable[[], float],
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self.clients = TokenBuckets(per_client, now=now, max_keys=max_keys)
        self.logins = {
            purpose: TokenBuckets(login, now=now, max_keys=max_keys) for purpose in set(LOGIN_ROUTES.values())
        }

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        path = _path(req)
        if _exempt(path):
            return
        key = client_key(client_address(req))
        wait = self.clients.take(key)
        if wait:
            raise too_many_requests(wait, "from your address", self.clients.budget)
        route = (req.method, path)
        if route in LOGIN_ROUTES:
            buckets = self.logins[LOGIN_ROUTES[route]]
            wait = buckets.take(key)
            if wait:
                raise too_many_requests(wait, f"{LOGIN_ROUTES[route]} from your address", buckets.budget)


class UserRateLimit:
    nonblocking = True  # runs on the event loop (ubot/http/asgi.py)

    def __init__(
        self,
        per_user: Budget = DEFAULT_PER_USER,
        *,
        now: Callable[[], float],
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self.users = TokenBuckets(per_user, now=now, max_keys=max_keys)

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Mapping[str, Any]
    ) -> None:
        user_id = getattr(req.context, "user_id", None)
        if user_id is None or _exempt(_path(req)):
            return
        wait = self.users.take(user_id)
        if wait:
            raise too_many_requests(wait, "for your account", self.users.budget)


@functools.lru_cache(maxsize=4096)
def client_key(address: str) -> str:
    """The bucket key of an address: itself for IPv4, its /64 network for IPv6."""
    parsed = parse_ip(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed) if parsed is not None else address


def too_many_requests(wait_s: float, what: str, budget: Budget) -> falcon.HTTPTooManyRequests:
    seconds = retry_after(wait_s)
    return falcon.HTTPTooManyRequests(
        title="Too many requests",
        description=f"Too many requests {what} (at most {_per(budget)}, bursts of {budget.burst}); "
        f"retry in {seconds} s.",
        retry_after=seconds,
    )


def _per(budget: Budget) -> str:
    if budget.rate >= 1:
        return f"{budget.rate:g} a second"
    return f"{budget.rate * 60:g} a minute"


def _path(req: falcon.Request) -> str:
    path = req.path
    return path.rstrip("/") or "/"
