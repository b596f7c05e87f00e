"""The OpenAPI 3.1 document served at ``GET /openapi.json``.

:func:`document` builds it from the routes an app serves (:data:`ubot.http.routes.ROUTES`): every
path and method of the table must have an entry in :data:`OPERATIONS`, and every entry must belong
to a route of the table, or building it raises (so ``create_app`` fails, and every test with it).
Request bodies are the JSON schemas the gateway validates with (:mod:`ubot.http.users`); the lists
of fields, timeframes, channels and frequencies come from the modules that define them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ubot.http import users
from ubot.http.alerts import DEFAULT_ALERTS, MAX_ALERTS
from ubot.http.params import DEFAULT_LIMIT, MAX_ID, MAX_LIMIT
from ubot.http.ratelimit import EXEMPT_PATHS
from ubot.http.routes import ROUTES, Route
from ubot.http.stream import MEDIA_EVENT_STREAM
from ubot.market.candles import TIMEFRAMES
from ubot.market.snapshot import GLOBAL_FIELDS, INT_FIELDS, NUMERIC_FIELDS
from ubot.users.validation import CHANNELS, FREQUENCIES, SETTINGS_FIELDS

JSON = "application/json"
VERSION = "1"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_TIME = {"type": "string", "description": "ISO-8601 UTC, e.g. 2024-10-16T00:00:00.000Z"}
_NULLABLE_TIME = {"type": ["string", "null"], "description": _TIME["description"]}
_NUMBER = {"type": ["number", "null"]}
_INTEGER = {"type": ["integer", "null"]}


def _object(
    properties: dict[str, Any], *, required: Iterable[str] | None = None, closed: bool = True
) -> dict:
    schema: dict[str, Any] = {
        "type": "object",
        "required": list(properties if required is None else required),
        "properties": properties,
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


_QUOTE_NUMBERS = {name: _INTEGER if name in INT_FIELDS else _NUMBER for name in NUMERIC_FIELDS}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "description": "Every error: a title, a description, and for a request field at fault its name "
        "(``field``) and, in a condition, the 1-based ``column``.",
        **_object(
            {
                "title": {"type": "string"},
                "description": {"type": "string"},
                "field": {"type": "string"},
                "column": {"type": "integer", "minimum": 1},
            },
            required=("title", "description"),
        ),
    },
    "Health": _object(
        {
            "status": {"enum": ["ok", "degraded", "starting"]},
            "source": {"type": "string"},
            "ticks": {"type": "integer", "minimum": 0},
            "ticks_ok": {"type": "integer", "minimum": 0},
            "ticks_skipped": {"type": "integer", "minimum": 0},
            "last_snapshot_at": _NULLABLE_TIME,
            "clock": {
                "oneOf": [
                    {"type": "null"},
                    _object(
                        {
                            "interval_s": {"type": "number"},
                            "ticking": {"type": "boolean"},
                            "lateness_ms_p50": _NUMBER,
                            "lateness_ms_p99": _NUMBER,
                            "lateness_ms_max": _NUMBER,
                            "missed_ticks": {"type": "integer"},
                        }
                    ),
                ]
            },
            "last_tick_ms": {"type": "object", "additionalProperties": {"type": "number"}},
            "source_status": {"type": "object", "description": "the market source's own status"},
            "scanner": {"type": "object", "description": "the Scanner's figures"},
            "reason": {"type": "string"},
            "source_exhausted": {"type": "boolean"},
        },
        required=("status", "source", "ticks", "last_snapshot_at", "clock", "last_tick_ms"),
    ),
    "Snapshot": _object(
        {
            "timestamp": _TIME,
            "convert": {"type": "string"},
            "global": {
                "oneOf": [
                    {"type": "null"},
                    _object({**{name: _NUMBER for name in GLOBAL_FIELDS}, "last_updated": _TIME}),
                ]
            },
            "coins": {
                "type": "array",
                "items": _object(
                    {
                        "id": {"type": "integer"},
                        "symbol": {"type": "string"},
                        "name": {"type": "string"},
                        "slug": {"type": "string"},
                        **_QUOTE_NUMBERS,
                        "last_updated": _TIME,
                    }
                ),
            },
            "unknown_symbols": {"type": "array", "items": {"type": "string"}},
        },
        required=("timestamp", "convert", "global", "coins"),
    ),
    "Candles": _object(
        {
            "id": {"type": "integer"},
            "symbol": {"type": "string"},
            "timeframe": {"enum": list(TIMEFRAMES)},
            "candles": {
                "type": "array",
                "items": _object(
                    {"open_time": _TIME, "open": _NUMBER, "high": _NUMBER, "low": _NUMBER, "close": _NUMBER}
                ),
            },
        }
    ),
    "Quotes": _object(
        {
            "id": {"type": "integer"},
            "symbol": {"type": "string"},
            "quotes": {"type": "array", "items": _object({"timestamp": _TIME, **_QUOTE_NUMBERS})},
        }
    ),
    "GlobalHistory": _object(
        {
            "global": {
                "type": "array",
                "items": _object({"timestamp": _TIME, **{name: _NUMBER for name in GLOBAL_FIELDS}}),
            }
        }
    ),
    "User": _object(
        {
            "id": {"type": "integer"},
            "username": {"type": "string"},
            "email": {"type": "string"},
            "created_at": _TIME,
        }
    ),
    "Session": _object({"token": {"type": "string"}, "expires_at": _TIME}),
    "Settings": _object(
        {name: {"type": ["string", "null"]} for name in SETTINGS_FIELDS},
    ),
    "Strategy": _object(
        {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "condition": {"type": "string"},
            "indicators": {"type": "array", "items": {"type": "string"}, "readOnly": True},
            "timeframe": {"enum": list(TIMEFRAMES)},
            "symbols": {"type": ["array", "null"], "items": {"type": "string"}},
            "top_n": _INTEGER,
            "channels": {"type": "array", "items": {"enum": list(CHANNELS)}},
            "frequency": {"enum": list(FREQUENCIES)},
            "cooldown_s": {"type": "integer"},
            "expires_at": _NULLABLE_TIME,
            "enabled": {"type": "boolean"},
            "created_at": _TIME,
            "updated_at": _TIME,
            "last_error": {"type": ["string", "null"]},
            "last_error_at": _NULLABLE_TIME,
        }
    ),
    "Strategies": _object({"strategies": {"type": "array", "items": _ref("Strategy")}}),
    "ConditionInfo": _object(
        {
            "valid": {"const": True},
            "indicators": {"type": "array", "items": {"type": "string"}},
            "fields": {"type": "array", "items": {"type": "string"}},
        }
    ),
    "Alert": _object(
        {
            "id": {"type": "integer"},
            "strategy_id": {"type": ["integer", "null"], "description": "null once the strategy is deleted"},
            "strategy_name": {"type": "string"},
            "coin_id": {"type": "integer"},
            "symbol": {"type": "string"},
            "timeframe": {"enum": list(TIMEFRAMES)},
            "fired_at": _TIME,
            "values": {"type": "object", "additionalProperties": _NUMBER},
            "text": {"type": "string"},
            "deliveries": {
                "type": "array",
                "items": _object(
                    {
                        "channel": {"type": "string"},
                        "status": {"enum": ["pending", "held", "sent", "failed"]},
                        "attempts": {"type": "integer", "minimum": 0},
                        "detail": {"type": ["string", "null"]},
                        "sent_at": _NULLABLE_TIME,
                    }
                ),
            },
        }
    ),
    "Alerts": _object({"alerts": {"type": "array", "items": _ref("Alert")}}),
    # The request bodies: the very schemas the gateway validates with.
    "Register": users.REGISTER,
    "Login": users.LOGIN,
    "PasswordChange": users.PASSWORD_CHANGE,
    "SettingsUpdate": users.SETTINGS,
    "StrategyInput": users.STRATEGY,
    "StrategyPatch": users.STRATEGY_PATCH,
    "Condition": users.CONDITION,
}

_RETRY_AFTER = {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 0}}
_CACHE_CONTROL = {"schema": {"type": "string"}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def _error(description: str, **headers: Any) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": _json(_ref("Error"))}
    if headers:
        response["headers"] = headers
    return response


RESPONSES: dict[str, Any] = {
    "BadRequest": _error("a query parameter or the body is malformed (``field`` names it)"),
    "Unauthorized": _error(
        "no bearer token, or one that is unknown, expired or revoked",
        **{"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    "NotFound": _error("no such resource"),
    "Conflict": _error("the request conflicts with what exists (a name taken, a limit reached)"),
    "LengthRequired": _error("a body was sent without Content-Length"),
    "ContentTooLarge": _error("the body is larger than ``[http] max_body_bytes``"),
    "UnsupportedMediaType": _error("the body is not application/json"),
    "Unprocessable": _error("a value is not allowed (``field`` names it; ``column`` for conditions)"),
    "TooManyAttempts": _error(
        "too many failed logins, or over the rate limit", **{"Retry-After": _RETRY_AFTER}
    ),
    "TooManyRequests": _error(
        "over the rate limit (``[limits]``: per client address, per user, and for sign-up and login)",
        **{"Retry-After": _RETRY_AFTER},
    ),
    "Unavailable": _error(
        "uBot did not answer in time (with Retry-After), or the feature is not enabled in this process",
        **{"Retry-After": _RETRY_AFTER},
    ),
}


def _use(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _ok(description: str, schema: dict[str, Any], **headers: Any) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": _json(schema)}
    if headers:
        response["headers"] = headers
    return response


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_TIME_PARAM = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "pattern": "^[0-9]{1,15}$", "description": "epoch milliseconds"},
    ]
}
_RANGE = [
    _query("start", _TIME_PARAM, "from this time on (ISO-8601 UTC or epoch milliseconds)"),
    _query("end", _TIME_PARAM, "up to this time (not before start)"),
]


def _limit(maximum: int, default: int) -> dict[str, Any]:
    return _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
        "at most this many",
    )


_COIN_KEY = {
    "name": "key",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
    "description": "a symbol (the best-ranked coin with it) or a numeric CoinMarketCap id",
}
_STRATEGY_ID = {
    "name": "strategy_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
}
_PRIVATE = [{"bearerAuth": []}]
_BODY_ERRORS = {
    "400": _use("BadRequest"),
    "411": _use("LengthRequired"),
    "413": _use("ContentTooLarge"),
    "415": _use("UnsupportedMediaType"),
}


def _body(schema: str, example: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": _ref(schema), "example": example}}}


_STRATEGY_EXAMPLE = {
    "name": "BTC breakout",
    "condition": "price > 67400 and rsi(14) < 70",
    "timeframe": "1h",
    "symbols": ["BTC"],
    "channels": [],
    "frequency": "once_per_crossing",
    "cooldown_s": 3600,
}


def _private(operation: dict[str, Any]) -> dict[str, Any]:
    return {
        **operation,
        "security": _PRIVATE,
        "responses": {"401": _use("Unauthorized"), **operation["responses"]},
    }


_STRATEGY_WRITE = {
    "200": _ok("the strategy as saved", _ref("Strategy")),
    **_BODY_ERRORS,
    "404": _use("NotFound"),
    "409": _use("Conflict"),
    "422": _use("Unprocessable"),
}

#: ``{path: {method: operation}}``: one entry per route and responder of :data:`ROUTES`.
OPERATIONS: dict[str, dict[str, dict[str, Any]]] = {
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": _ok("the OpenAPI 3.1 document", {"type": "object"})},
        }
    },
    "/health": {
        "get": {
            "summary": "Pipeline health",
            "responses": {
                "200": _ok("ticking", _ref("Health")),
                "503": {
                    "description": "no snapshot yet, or no tick finished for 3 intervals (the health "
                    "document); or the Monitor did not answer (an error)",
                    "content": _json({"anyOf": [_ref("Health"), _ref("Error")]}),
                },
            },
        }
    },
    "/v1/snapshot": {
        "get": {
            "summary": "The latest snapshot",
            "parameters": [
                _query(
                    "symbols", {"type": "string"}, "only these coins: a comma-separated list, at most 1,000"
                ),
                {
                    "name": "If-None-Match",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "an ETag of an earlier answer: 304 if it is still current",
                },
            ],
            "responses": {
                "200": _ok(
                    "the snapshot",
                    _ref("Snapshot"),
                    ETag={"required": True, "schema": {"type": "string"}},
                    **{"Cache-Control": _CACHE_CONTROL},
                ),
                "304": {
                    "description": "not modified (If-None-Match matched)",
                    "headers": {"ETag": {"required": True, "schema": {"type": "string"}}},
                },
                "400": _use("BadRequest"),
                "503": _use("Unavailable"),
            },
        }
    },
    "/v1/coins/{key}/candles": {
        "get": {
            "summary": "OHLC candles of one coin, ascending, the open one last",
            "parameters": [
                _COIN_KEY,
                _query("timeframe", {"enum": list(TIMEFRAMES), "default": "1h"}, "the candle size"),
                *_RANGE,
                _limit(MAX_LIMIT, DEFAULT_LIMIT),
            ],
            "responses": {
                "200": _ok("the candles", _ref("Candles")),
                "400": _use("BadRequest"),
                "404": _use("NotFound"),
                "503": _use("Unavailable"),
            },
        }
    },
    "/v1/coins/{key}/quotes": {
        "get": {
            "summary": "Raw quote history of one coin, ascending",
            "parameters": [_COIN_KEY, *_RANGE, _limit(MAX_LIMIT, DEFAULT_LIMIT)],
            "responses": {
                "200": _ok("the quotes", _ref("Quotes")),
                "400": _use("BadRequest"),
                "404": _use("NotFound"),
                "503": _use("Unavailable"),
            },
        }
    },
    "/v1/global": {
        "get": {
            "summary": "Raw global-metrics history, ascending",
            "parameters": [*_RANGE, _limit(MAX_LIMIT, DEFAULT_LIMIT)],
            "responses": {
                "200": _ok("the global metrics", _ref("GlobalHistory")),
                "400": _use("BadRequest"),
                "503": _use("Unavailable"),
            },
        }
    },
    "/v1/me/alerts": {
        "get": _private(
            {
                "summary": "Your alerts, newest first, with each channel's delivery status",
                "parameters": [
                    _query("since", _TIME_PARAM, "only alerts fired at or after this time"),
                    _query(
                        "strategy", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "one strategy's"
                    ),
                    _limit(MAX_ALERTS, DEFAULT_ALERTS),
                ],
                "responses": {
                    "200": _ok("the alerts", _ref("Alerts"), **{"Cache-Control": _CACHE_CONTROL}),
                    "400": _use("BadRequest"),
                    "503": _use("Unavailable"),
                },
            }
        )
    },
    "/v1/stream": {
        "get": {
            "summary": "Live events (Server-Sent Events): snapshot events, and your alert events",
            "description": "An endless response: ``snapshot`` events for everyone, ``alert`` events for "
            "an authenticated client (Authorization: Bearer, or ?access_token= for EventSource), "
            "``: heartbeat`` comments, ``event: reset`` when a resumed id is too old.",
            "security": [{}, {"bearerAuth": []}, {"accessToken": []}],
            "parameters": [
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "resume after this event (an unknown id starts with a reset)",
                },
                _query("last_event_id", {"type": "string", "pattern": "^[0-9]{1,19}$"}, "as Last-Event-ID"),
            ],
            "responses": {
                "200": {
                    "description": "the event stream",
                    "content": {MEDIA_EVENT_STREAM: {"schema": {"type": "string"}}},
                },
                "400": _use("BadRequest"),
                "401": _use("Unauthorized"),
                "503": _use("Unavailable"),
            },
        }
    },
    "/v1/users": {
        "post": {
            "summary": "Create an account",
            "requestBody": _body(
                "Register",
                {"username": "ada", "email": "ada@example.com", "password": "correct horse battery staple"},
            ),
            "responses": {
                "201": _ok("the account", _ref("User")),
                **_BODY_ERRORS,
                "409": _use("Conflict"),
                "422": _use("Unprocessable"),
                "503": _use("Unavailable"),
            },
        }
    },
    "/v1/sessions": {
        "post": {
            "summary": "Log in: a bearer token valid for 30 days",
            "requestBody": _body("Login", {"username": "ada", "password": "correct horse battery staple"}),
            "responses": {
                "201": _ok("the token", _ref("Session"), **{"Cache-Control": _CACHE_CONTROL}),
                **_BODY_ERRORS,
                "401": _error("wrong username or password"),
                "429": _use("TooManyAttempts"),
                "503": _use("Unavailable"),
            },
        }
    },
    "/v1/sessions/current": {
        "delete": _private(
            {
                "summary": "Log out: revoke the token sent",
                "responses": {"204": {"description": "revoked"}, "503": _use("Unavailable")},
            }
        )
    },
    "/v1/me/sessions": {
        "delete": _private(
            {
                "summary": "Log out everywhere: revoke every token of the user",
                "responses": {
                    "200": _ok(
                        "how many were revoked", _object({"revoked": {"type": "integer", "minimum": 0}})
                    ),
                    "503": _use("Unavailable"),
                },
            }
        )
    },
    "/v1/me/password": {
        "put": _private(
            {
                "summary": "Change the password; every session is revoked",
                "requestBody": _body(
                    "PasswordChange",
                    {
                        "old_password": "correct horse battery staple",
                        "new_password": "a new and longer passphrase",
                    },
                ),
                "responses": {
                    "204": {"description": "changed"},
                    **_BODY_ERRORS,
                    "403": _error("old_password is not the current password"),
                    "422": _use("Unprocessable"),
                    "429": _use("TooManyAttempts"),
                    "503": _use("Unavailable"),
                },
            }
        )
    },
    "/v1/me/settings": {
        "get": _private(
            {
                "summary": "Your settings",
                "responses": {"200": _ok("the settings", _ref("Settings")), "503": _use("Unavailable")},
            }
        ),
        "put": _private(
            {
                "summary": "Replace your settings (members left out are cleared)",
                "requestBody": _body(
                    "SettingsUpdate",
                    {
                        "webhook_url": "https://example.com/hook",
                        "webhook_secret": "s3cret-s3cret-s3cret",
                        "quiet_hours": "22:00-07:00",
                        "timezone": "Europe/Paris",
                    },
                ),
                "responses": {
                    "200": _ok("the settings as saved", _ref("Settings")),
                    **_BODY_ERRORS,
                    "409": _use("Conflict"),
                    "422": _use("Unprocessable"),
                    "503": _use("Unavailable"),
                },
            }
        ),
    },
    "/v1/me/strategies": {
        "get": _private(
            {
                "summary": "Your strategies",
                "responses": {"200": _ok("the strategies", _ref("Strategies")), "503": _use("Unavailable")},
            }
        ),
        "post": _private(
            {
                "summary": "Create a strategy",
                "requestBody": _body("StrategyInput", _STRATEGY_EXAMPLE),
                "responses": {
                    "201": _ok(
                        "the strategy",
                        _ref("Strategy"),
                        Location={"required": True, "schema": {"type": "string"}},
                    ),
                    **_BODY_ERRORS,
                    "409": _use("Conflict"),
                    "422": _use("Unprocessable"),
                    "503": _use("Unavailable"),
                },
            }
        ),
    },
    "/v1/me/strategies/{strategy_id}": {
        "get": _private(
            {
                "summary": "One of your strategies",
                "parameters": [_STRATEGY_ID],
                "responses": {
                    "200": _ok("the strategy", _ref("Strategy")),
                    "404": _use("NotFound"),
                    "503": _use("Unavailable"),
                },
            }
        ),
        "put": _private(
            {
                "summary": "Replace a strategy",
                "parameters": [_STRATEGY_ID],
                "requestBody": _body("StrategyInput", _STRATEGY_EXAMPLE),
                "responses": {**_STRATEGY_WRITE, "503": _use("Unavailable")},
            }
        ),
        "patch": _private(
            {
                "summary": "Change some members of a strategy",
                "parameters": [_STRATEGY_ID],
                "requestBody": _body("StrategyPatch", {"enabled": False}),
                "responses": {**_STRATEGY_WRITE, "503": _use("Unavailable")},
            }
        ),
        "delete": _private(
            {
                "summary": "Delete a strategy",
                "parameters": [_STRATEGY_ID],
                "responses": {
                    "204": {"description": "deleted"},
                    "404": _use("NotFound"),
                    "503": _use("Unavailable"),
                },
            }
        ),
    },
    "/v1/conditions/validate": {
        "post": {
            "summary": "Check a condition without saving anything",
            "requestBody": _body("Condition", {"condition": "rsi(14) < 30 and price > sma(50)"}),
            "responses": {
                "200": _ok(
                    "valid: the indicators it computes and the fields it reads", _ref("ConditionInfo")
                ),
                **_BODY_ERRORS,
                "422": _use("Unprocessable"),
                "503": _use("Unavailable"),
            },
        }
    },
}


def check(routes: Iterable[Route] = ROUTES) -> None:
    """Raise ``LookupError`` unless :data:`OPERATIONS` describes exactly ``routes``' paths and methods."""
    served = {(route.path, method.lower()) for route in routes for method in route.methods}
    described = {(path, method) for path, methods in OPERATIONS.items() for method in methods}
    missing, extra = sorted(served - described), sorted(described - served)
    if missing or extra:
        raise LookupError(
            f"OpenAPI operations out of step with the routes: undescribed {missing}, not served {extra}"
        )


def _limited(path: str, operation: dict[str, Any]) -> dict[str, Any]:
    """``operation`` with the rate limit's 429, on every route the limits apply to."""
    if path in EXEMPT_PATHS or "429" in operation["responses"]:
        return operation
    return {**operation, "responses": {**operation["responses"], "429": _use("TooManyRequests")}}


def document(routes: Iterable[Route] = ROUTES) -> dict[str, Any]:
    """The OpenAPI document of ``routes`` (each must be described)."""
    check(ROUTES)
    routes = tuple(routes)
    paths: dict[str, Any] = {}
    for route in routes:
        operations = OPERATIONS[route.path]
        paths[route.path] = {m.lower(): _limited(route.path, operations[m.lower()]) for m in route.methods}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "uBot",
            "version": VERSION,
            "description": 'Crypto market data and alerts. Errors are JSON {"title", "description"}, '
            'with "field" (and "column" for conditions) when a request field is at fault. Times are '
            "ISO-8601 UTC; start, end and since also accept epoch milliseconds.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "responses": RESPONSES,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "POST /v1/sessions gives one",
                },
                "accessToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "access_token",
                    "description": "the bearer token, for EventSource (GET /v1/stream only)",
                },
            },
        },
    }
