"""Every error answer, in one place: the uniform JSON shape and the mapping of exceptions to HTTP.

Errors are JSON ``{"title", "description"}``, with ``field`` (the request field at fault) and
``column`` (1-based, in a condition) when they apply, whatever the client accepts. Domain exceptions
(``ubot/users/errors.py``) carry no HTTP notion: :data:`USER_ERRORS` gives each class its status,
and a ``Throttled`` (429) or ``Busy`` (503: the argon2 pool is full) one its ``Retry-After``. :func:`add_error_handlers` installs it all on an app.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon
import msgspec

from ubot.http.gateway import NotEnabled, Unavailable
from ubot.http.shapes import Error
from ubot.users import errors as domain

log = logging.getLogger(__name__)

#: The HTTP status of each domain exception (the first class in the MRO that is listed).
USER_ERRORS: dict[type[domain.UserError], str] = {
    domain.ValidationError: falcon.HTTP_422,
    domain.OverBudget: falcon.HTTP_422,
    domain.BadCredentials: falcon.HTTP_401,
    domain.WrongPassword: falcon.HTTP_403,
    domain.NotFound: falcon.HTTP_404,
    domain.Conflict: falcon.HTTP_409,
    domain.Throttled: falcon.HTTP_429,
    domain.Busy: falcon.HTTP_503,
    domain.InProgress: falcon.HTTP_422,
    domain.NotVerified: falcon.HTTP_409,
    domain.UserError: falcon.HTTP_400,
}


class HTTPFieldError(falcon.HTTPError):
    """An HTTP error whose JSON body carries extra members (``field``, ``column``...)."""

    def __init__(self, status: str, title: str, description: str, **members: Any) -> None:
        super().__init__(status, title=title, description=description)
        self.members = {k: v for k, v in members.items() if v is not None}


def _user_error(req: falcon.Request, resp: falcon.Response, exc: domain.UserError, params: dict) -> None:
    status = next(USER_ERRORS[cls] for cls in type(exc).__mro__ if cls in USER_ERRORS)
    error = HTTPFieldError(
        status, exc.title, exc.description, field=exc.field, column=getattr(exc, "column", None)
    )
    if isinstance(exc, domain.Throttled | domain.Busy):
        error.headers = {"Retry-After": str(exc.retry_after_s)}
    raise error


def _unavailable(req: falcon.Request, resp: falcon.Response, exc: Unavailable, params: dict) -> None:
    log.warning("%s %s: %s", req.method, req.path, exc)
    raise falcon.HTTPServiceUnavailable(
        title="Service busy", description="uBot did not answer in time; try again", retry_after=2
    )


def _not_enabled(req: falcon.Request, resp: falcon.Response, exc: NotEnabled, params: dict) -> None:
    raise falcon.HTTPServiceUnavailable(title="Not enabled", description=str(exc))


def _unexpected(req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict) -> None:
    if isinstance(exc, falcon.HTTPError):
        raise exc
    log.exception("%s %s failed", req.method, req.path)
    raise falcon.HTTPInternalServerError(
        title="Internal error", description="the error was logged; please report it"
    )


def serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Always JSON (whatever the client accepts), always with a description."""
    description = exc.description
    if not description:  # Falcon's own 404 (no route) and 405 carry a title only
        if isinstance(exc, falcon.HTTPMethodNotAllowed):
            description = f"{req.path} does not accept {req.method}."
        elif isinstance(exc, falcon.HTTPNotFound):
            description = f"There is no resource at {req.path}."
        else:
            description = f"{exc.title}."
    resp.content_type = falcon.MEDIA_JSON
    resp.data = msgspec.json.encode(Error(exc.title, description, **getattr(exc, "members", {})))


def add_error_handlers(app: falcon.App) -> None:
    """Falcon picks the handler of the most specific class: the catch-all comes first. (The ASGI
    app, ``ubot.http.asgi.App``, runs these plain functions as coroutines.)"""
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(Unavailable, _unavailable)
    app.add_error_handler(NotEnabled, _not_enabled)
    app.add_error_handler(domain.UserError, _user_error)
    app.set_error_serializer(serialize_error)
