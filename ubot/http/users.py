"""HTTP resources for accounts, sessions, settings, strategies and condition checks.

Each resource turns a request into one call of the UserManager (through the :class:`Gateway`) and
its value into a response; a domain exception it raises becomes the matching error
(``ubot/http/errors.py``).
The JSON schemas here check the *shape* of bodies (400 naming the field); the UserManager checks
the meaning (422 naming the field, and the column for conditions).
"""

from __future__ import annotations

from typing import Any

import falcon

from ubot.http.clientaddr import client_address
from ubot.http.gateway import Gateway
from ubot.http.middleware import validated
from ubot.timeutil import iso_from_ms
from ubot.users import messages as m
from ubot.users.manager import UserManager as U
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
        self.ask = gateway.ask_users


class UsersResource(_Resource):
    @validated(REGISTER)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.context.body
        view = self.ask(U.register, body["username"], body["email"], body["password"])
        resp.status = falcon.HTTP_201
        resp.media = {**view.as_dict(), "created_at": iso_from_ms(view.created_at)}


class SessionsResource(_Resource):
    @validated(LOGIN)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.context.body
        login = self.ask(U.login, body["username"], body["password"], client_address(req))
        resp.status = falcon.HTTP_201
        resp.cache_control = ["no-store"]
        resp.media = {"token": login.token, "expires_at": iso_from_ms(login.expires_at)}


class CurrentSessionResource(_Resource):
    auth_required = True

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        _, _, token = req.auth.partition(" ")
        self.ask(U.logout, token.strip())
        resp.status = falcon.HTTP_204


class AllSessionsResource(_Resource):
    """``DELETE /v1/me/sessions``: log out everywhere (every token of this user)."""

    auth_required = True

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        revoked = self.ask(U.logout_everywhere, req.context.user_id)
        resp.media = {"revoked": revoked}


class PasswordResource(_Resource):
    """``PUT /v1/me/password``: change it; every session (this one too) is revoked."""

    auth_required = True

    @validated(PASSWORD_CHANGE)
    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.context.body
        self.ask(U.change_password, req.context.user_id, body["old_password"], body["new_password"])
        resp.status = falcon.HTTP_204


class SettingsResource(_Resource):
    auth_required = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.ask(U.get_settings, req.context.user_id).as_dict()

    @validated(SETTINGS)
    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.ask(U.put_settings, req.context.user_id, req.context.body).as_dict()


class StrategiesResource(_Resource):
    auth_required = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        views = self.ask(U.list_strategies, req.context.user_id)
        resp.media = {"strategies": [_strategy_doc(view) for view in views]}

    @validated(STRATEGY)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        view = self.ask(U.create_strategy, req.context.user_id, _writable(req.context.body))
        resp.status = falcon.HTTP_201
        resp.location = f"/v1/me/strategies/{view.id}"
        resp.media = _strategy_doc(view)


class StrategyResource(_Resource):
    auth_required = True

    def on_get(self, req: falcon.Request, resp: falcon.Response, strategy_id: int) -> None:
        resp.media = _strategy_doc(self.ask(U.get_strategy, req.context.user_id, strategy_id))

    @validated(STRATEGY)
    def on_put(self, req: falcon.Request, resp: falcon.Response, strategy_id: int) -> None:
        view = self.ask(U.update_strategy, req.context.user_id, strategy_id, _writable(req.context.body))
        resp.media = _strategy_doc(view)

    @validated(STRATEGY_PATCH)
    def on_patch(self, req: falcon.Request, resp: falcon.Response, strategy_id: int) -> None:
        view = self.ask(U.patch_strategy, req.context.user_id, strategy_id, _writable(req.context.body))
        resp.media = _strategy_doc(view)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, strategy_id: int) -> None:
        self.ask(U.delete_strategy, req.context.user_id, strategy_id)
        resp.status = falcon.HTTP_204


class ConditionsResource(_Resource):
    @validated(CONDITION)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.ask(U.validate_condition, req.context.body["condition"]).as_dict()
