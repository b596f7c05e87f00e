"""CORS: Falcon's own :class:`falcon.CORSMiddleware` with the allow-list of ``[http] cors_origins``.

No origins configured: do not add this middleware at all (no CORS header on any response, so browsers
refuse cross-origin reads).

Falcon's middleware only acts in ``process_response``: a request from an allowed ``Origin`` gets
``Access-Control-Allow-Origin: <that origin>`` and ``Access-Control-Expose-Headers`` (so scripts can
read :data:`EXPOSE_HEADERS`); a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) gets
``Access-Control-Allow-Methods`` from the ``Allow`` header of the response,
``Access-Control-Allow-Headers`` echoing the requested ones (``Authorization``, ``Content-Type``...)
and ``Access-Control-Max-Age: 86400``. Another origin gets no CORS header: the browser refuses.

What :class:`CORS` adds:

* Preflights are answered in ``process_resource``, before :class:`~ubot.http.middleware.Authentication`
  (so this middleware must come before it): a browser never sends credentials on a preflight, so on
  a private resource it would otherwise get a 401 and refuse the real request. The answer is 200
  with ``Allow`` listing the resource's methods (Falcon's own default ``OPTIONS`` responder does the
  same, but it runs after authentication). A route that does not exist stays a 404.
* ``Vary: Origin`` on every response when the allow-list is not ``*``: the answer depends on the
  ``Origin``, and a cache must not serve one origin's answer to another.

Credentials (``allow_credentials``) stay off: other origins authenticate with a bearer token in the
``Authorization`` header, which a script sends explicitly and CORS allows without credentials mode.
The dashboard's session cookie (``ubot/http/browser.py``) is for uBot's own page only: it is
``SameSite=Strict``, and no other origin may read an answer made with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import falcon
from falcon.routing import map_http_methods

EXPOSE_HEADERS = ("ETag", "Location", "Retry-After", "X-Request-ID")


class CORS(falcon.CORSMiddleware):
    nonblocking = True  # runs on the event loop (ubot/http/asgi.py)

    def __init__(self, allow_origins: Iterable[str], expose_headers: Iterable[str] = EXPOSE_HEADERS) -> None:
        origins = tuple(allow_origins)
        if not origins:
            raise ValueError("CORS needs at least one allowed origin (or leave the middleware out)")
        super().__init__(allow_origins="*" if origins == ("*",) else origins, expose_headers=expose_headers)

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Mapping[str, Any]
    ) -> None:
        if resource is not None and is_preflight(req):
            resp.set_header("Allow", ", ".join(dict.fromkeys([*map_http_methods(resource), "OPTIONS"])))
            resp.complete = True  # no further process_resource, no responder; process_response runs

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        super().process_response(req, resp, resource, req_succeeded)
        if self.allow_origins != "*":
            resp.append_header("Vary", "Origin")


def is_preflight(req: falcon.Request) -> bool:
    return (
        req.method == "OPTIONS"
        and req.get_header("Origin") is not None
        and req.get_header("Access-Control-Request-Method") is not None
    )
