"""The checks every request passes, once, before any resource sees it.

* :class:`BodyLimit`: a request body larger than the limit is refused (413) before it is read;
  a body without a declared length is refused (411), so nothing reads an unbounded stream.
* :class:`RequireJSON`: a request body must be JSON (415).
* :class:`Authentication`: resources that set ``auth_required = True`` need
  ``Authorization: Bearer <token>``; the token is checked by the ``authenticate`` callable (the
  gateway's session reader on its own database connections, ``ubot/users/sessions.py``; the cookie
  goes the same way) and the user's id lands in ``req.context.user_id``; otherwise 401.
  Resources that set ``auth_optional = True`` serve anonymous requests too (``user_id`` None), but a
  credential that is sent must be valid (401). A resource may name a query parameter in
  ``token_param`` that carries the token when there is no ``Authorization`` header (for browsers'
  ``EventSource``, which cannot send headers); such a route must never log its query string. With
  ``authenticate=None`` (accounts not enabled) a request that needs it gets 503. Without an
  ``Authorization`` header (nor ``token_param``), the browser's session cookie serves instead
  (``ubot/http/browser.py``): a request that changes something must then carry the CSRF header
  (403), and a cookie that no longer authenticates is cleared with the 401 (on a route that serves
  anonymous requests too, it is ignored). ``req.context.via_cookie`` says which.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import falcon

from ubot.http import browser

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyLimit:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.method not in _BODY_METHODS:
            return
        length = req.content_length
        if length is None:
            if req.get_header("Transfer-Encoding"):
                raise falcon.HTTPLengthRequired(
                    title="Length required", description="Send the body with a Content-Length header."
                )
            return  # no body at all
        if length > self.max_bytes:
            raise falcon.HTTPContentTooLarge(
                title="Body too large",
                description=f"The request body is {length} bytes; the limit is {self.max_bytes}.",
            )


class RequireJSON:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.method in _BODY_METHODS and (req.content_length or 0) > 0:
            media_type = (req.content_type or "").split(";", 1)[0].strip().lower()
            if media_type != falcon.MEDIA_JSON:
                raise falcon.HTTPUnsupportedMediaType(
                    title="JSON only",
                    description=f"Send the body as {falcon.MEDIA_JSON}, not {media_type or 'nothing'}.",
                )


class Authentication:
    def __init__(self, authenticate: Callable[[str], int | None] | None) -> None:
        self.authenticate = authenticate

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Mapping[str, Any]
    ) -> None:
        req.context.user_id = None
        req.context.token = None
        req.context.via_cookie = False
        if resource is None:
            return
        required = getattr(resource, "auth_required", False)
        if not required and not getattr(resource, "auth_optional", False):
            return
        token_param = getattr(resource, "token_param", None)
        if req.auth is None and not (token_param and req.get_param(token_param) is not None):
            cookie = browser.session_token(req)
            if cookie is not None and self.authenticate is not None:
                self._cookie(req, resp, cookie, required)
                return
        if req.auth is None and token_param and req.get_param(token_param) is not None:
            scheme, token = "bearer", req.get_param(token_param).strip()
        elif req.auth is None and not required:
            return  # anonymous
        else:
            scheme, _, token = (req.auth or "").partition(" ")
            token = token.strip()
        if self.authenticate is None:
            raise falcon.HTTPServiceUnavailable(
                title="Not enabled", description="Accounts are not enabled in this process."
            )
        if scheme.lower() != "bearer" or not token or len(token) > 512:
            raise _unauthorized("Send Authorization: Bearer <token> (POST /v1/sessions gives one).")
        user_id = self.authenticate(token)
        if user_id is None:
            raise _unauthorized("The token is unknown, expired or revoked; log in again.")
        req.context.user_id = user_id
        req.context.token = token

    def _cookie(self, req: falcon.Request, resp: falcon.Response, token: str, required: bool) -> None:
        user_id = self.authenticate(token) if token and len(token) <= 512 else None  # type: ignore[misc]
        if user_id is None:
            browser.clear_session(resp)
            if required:
                raise _unauthorized("The session cookie is unknown, expired or revoked; log in again.")
            return  # anonymous
        browser.check_csrf(req, token)
        req.context.user_id = user_id
        req.context.token = token
        req.context.via_cookie = True


def _unauthorized(description: str) -> falcon.HTTPUnauthorized:
    return falcon.HTTPUnauthorized(
        title="Authentication required", description=description, challenges=["Bearer"]
    )
