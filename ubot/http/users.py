"""HTTP resources for accounts, sessions, settings, strategies and condition checks.

Each resource turns a request into one UserManager message (through the :class:`Gateway`) and its
reply into a response; a :class:`~ubot.users.messages.Rejected` reply becomes the matching error.
The JSON schemas here check the *shape* of bodies (400 naming the field); the UserManager checks
the meaning (422 naming the field, and the column for conditions).
"""

from __future__ import annotations

from typing import Any

import falcon

from ubot.http.clientaddr import client_address
from ubot.http.gateway import Gateway
from ubot.http.middleware import HTTPFieldError, validated
from ubot.timeutil import iso_from_ms
from ubot.users import messages as m
from ubot.users.validation import SETTINGS_FIELDS, STRATEGY_READ_ONLY

_TEXT = {"type": "string", "maxLength": 1000}
_NULLABLE_TEXT = {"type": ["string", "null"], "maxLength": 1000}
_CHANNELS = {"type": "array", "maxItems": 5, "items": {"type": "string", "maxLength": 16}}

REGISTER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["username", "email", "password"],
    "properties": {"username": _TEXT, "email": _TEXT, "password": _TEXT},
}
LOGIN = {
    "type": "object",
    "additionalProperties": False,
    "required": ["username", "password"],
    "properties": {"username": _TEXT, "password": _TEXT},
}
SETTINGS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {name: _NULLABLE_TEXT for name in SETTINGS_FIELDS},
}
_STRATEGY_PROPERTIES = {
    "name": _TEXT,
    "condition": _TEXT,
    "timeframe": _TEXT,
    "symbols": {"type": ["array", "null"], "maxItems": 50, "items": {"type": "string", "maxLength": 64}},
    "top_n": {"type": ["integer", "null"]},
    "channels": _CHANNELS,
    "frequency": _TEXT,
    "cooldown_s": {"type": "integer"},
    "expires_at": {"type": ["string", "integer", "null"], "maxLength": 64},
    "enabled": {"type": "boolean"},
    # Read-only members: accepted (clients echo a fetched strategy back) and ignored.
    "indicators": {"type": "array"},
    "id": {"type": "integer"},
    "created_at": {"type": ["string", "integer"]},
    "last_error": {"type": ["string", "null"]},
    "last_error_at": {"type": ["string", "integer", "null"]},
    "updated_at": {"type": ["string", "integer"]},
}
STRATEGY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "condition", "timeframe"],
    "properties": _STRATEGY_PROPERTIES,
}
STRATEGY_PATCH = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": _STRATEGY_PROPERTIES,
}
PASSWORD_CHANGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["old_password", "new_password"],
    "properties": {"old_password": _TEXT, "new_password": _TEXT},
}
CONDITION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["condition"],
    "properties": {"condition": _TEXT},
}


def _answer(reply: Any) -> Any:
    """The reply, or the HTTP error a Rejected reply stands for."""
    if isinstance(reply, m.Rejected):
        error = HTTPFieldError(
            getattr(falcon, f"HTTP_{reply.status}"),
            reply.title,
            reply.description,
            field=reply.field,
            column=reply.column,
        )
        if reply.retry_after is not None:
            error.headers = {"Retry-After": str(reply.retry_after)}
        raise error
    return reply


def _strategy_doc(view: m.StrategyView) -> dict[str, Any]:
    doc = view.as_dict()
    for name in ("created_at", "updated_at", "expires_at", "last_error_at"):
        if doc[name] is not None:
            doc[name] = iso_from_ms(doc[name])
    return doc


def _writable(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in STRATEGY_READ_ONLY}


class _Resource:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def ask(self, message: Any) -> Any:
        return _answer(self.gateway.users_ask(message))


class UsersResource(_Resource):
    @validated(REGISTER)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.context.body
        view = self.ask(m.Register(body["username"], body["email"], body["password"]))
        resp.status = falcon.HTTP_201
        resp.media = {**view.as_dict(), "created_at": iso_from_ms(view.created_at)}


class SessionsResource(_Resource):
    @validated(LOGIN)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.context.body
        login = self.ask(m.Login(body["username"], body["password"], client=client_address(req)))
        resp.status = falcon.HTTP_201
        resp.cache_control = ["no-store"]
        resp.media = {"token": login.token, "expires_at": iso_from_ms(login.expires_at)}


class CurrentSessionResource(_Resource):
    auth_required = True

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        _, _, token = req.auth.partition(" ")
        self.ask(m.Logout(token.strip()))
        resp.status = falcon.HTTP_204


class AllSessionsResource(_Resource):
    """``DELETE /v1/me/sessions``: log out everywhere (every token of this user)."""

    auth_required = True

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        revoked = self.ask(m.LogoutEverywhere(req.context.user_id))
        resp.media = {"revoked": revoked}


class PasswordResource(_Resource):
    """``PUT /v1/me/password``: change it; every session (this one too) is revoked."""

    auth_required = True

    @validated(PASSWORD_CHANGE)
    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.context.body
        self.ask(m.ChangePassword(req.context.user_id, body["old_password"], body["new_password"]))
        resp.status = falcon.HTTP_204


class SettingsResource(_Resource):
    auth_required = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.ask(m.GetSettings(req.context.user_id)).as_dict()

    @validated(SETTINGS)
    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.ask(m.PutSettings(req.context.user_id, req.context.body)).as_dict()


class StrategiesResource(_Resource):
    auth_required = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        views = self.ask(m.ListStrategies(req.context.user_id))
        resp.media = {"strategies": [_strategy_doc(view) for view in views]}

    @validated(STRATEGY)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        view = self.ask(m.CreateStrategy(req.context.user_id, _writable(req.context.body)))
        resp.status = falcon.HTTP_201
        resp.location = f"/v1/me/strategies/{view.id}"
        resp.media = _strategy_doc(view)


class StrategyResource(_Resource):
    auth_required = True

    def on_get(self, req: falcon.Request, resp: falcon.Response, strategy_id: int) -> None:
        resp.media = _strategy_doc(self.ask(m.GetStrategy(req.context.user_id, strategy_id)))

    @validated(STRATEGY)
    def on_put(self, req: falcon.Request, resp: falcon.Response, strategy_id: int) -> None:
        message = m.UpdateStrategy(req.context.user_id, strategy_id, _writable(req.context.body))
        resp.media = _strategy_doc(self.ask(message))

    @validated(STRATEGY_PATCH)
    def on_patch(self, req: falcon.Request, resp: falcon.Response, strategy_id: int) -> None:
        message = m.PatchStrategy(req.context.user_id, strategy_id, _writable(req.context.body))
        resp.media = _strategy_doc(self.ask(message))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, strategy_id: int) -> None:
        self.ask(m.DeleteStrategy(req.context.user_id, strategy_id))
        resp.status = falcon.HTTP_204


class ConditionsResource(_Resource):
    @validated(CONDITION)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.ask(m.ValidateCondition(req.context.body["condition"])).as_dict()
