"""The OpenAPI 3.1 document served at ``GET /openapi.json``, generated.

Paths and methods come from the route table (:data:`ubot.http.routes.ROUTES`); each responder's
query, body and answers from its :func:`~ubot.http.api.operation` declaration; every schema from the
shapes the gateway decodes and answers with (``ubot/users/shapes.py``, ``ubot/http/shapes.py``),
through ``msgspec.json.schema_components``. So the document cannot say other than the server does.
What every operation shares is added here: the answers of a kind of operation (:data:`_SHARED`),
the refusals of the HTTP server itself (:data:`_SERVER`: gunicorn answers them before the app, in
the same error shape, ``ubot/http/server.py``), and the headers of the gzip middleware
(``ubot/http/compress.py``) on every JSON answer.
A responder without a declaration stops the document (``create_app`` fails, and every test with it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from ubot.http import browser, shapes
from ubot.http.api import MAX_JSON_DEPTH, Operation
from ubot.http.compress import MIN_BYTES
from ubot.http.ratelimit import EXEMPT_PATHS
from ubot.http.routes import ROUTES, Route
from ubot.http.server import LIMIT_REQUEST_FIELD_SIZE, LIMIT_REQUEST_FIELDS, LIMIT_REQUEST_LINE
from ubot.http.stream import MEDIA_EVENT_STREAM

JSON = "application/json"
VERSION = "1"
REF = "#/components/schemas/{name}"

_RETRY_AFTER = {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 0}}
#: Answers every operation of a kind shares.
_SHARED = {
    "query": {400: "a query parameter is unknown, repeated or malformed (``field`` names it)"},
    "body": {
        400: (
            "the body or a query parameter is malformed (``field`` names it), or the body nests arrays "
            f"and objects more than {MAX_JSON_DEPTH} levels deep"
        ),
        411: "a body was sent without Content-Length",
        413: "the body is larger than ``[http] max_body_bytes``",
        415: "the body is not application/json",
    },
    "private": {401: "no bearer token (nor session cookie), or one that is unknown, expired or revoked"},
    "csrf": {403: browser.CSRF_REFUSED},
    "limited": {
        429: "over the rate limit (``[limits]``: per client address, per user, and for sign-up and login)"
    },
}
#: Refusals of the HTTP server, before uBot reads the request (any operation can get them; a 400 for
#: a request that is not valid HTTP comes without ``field``).
_SERVER = {
    414: f"the request line (method, path and query) is longer than {LIMIT_REQUEST_LINE} bytes (the HTTP "
    "server's own refusal)",
    431: f"more than {LIMIT_REQUEST_FIELDS} header fields, or one longer than {LIMIT_REQUEST_FIELD_SIZE} "
    "bytes (the HTTP server's own refusal)",
}
#: The gzip middleware's headers, declared once in ``components/headers``: ``Vary`` on every JSON
#: answer and every 304, ``Content-Encoding`` on a JSON 2xx.
_GZIP_HEADERS = {
    "Vary": {
        "description": "Accept-Encoding (and Origin when [http] cors_origins is a list): the answer "
        "depends on them",
        "schema": {"type": "string"},
    },
    "Content-Encoding": {
        "description": f"gzip when Accept-Encoding allows it and the JSON body has at least {MIN_BYTES} bytes",
        "schema": {"type": "string", "enum": ["gzip"]},
    },
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {"Retry-After": _RETRY_AFTER},
    503: {"Retry-After": _RETRY_AFTER},
}


def operation_of(route: Route, method: str) -> Operation:
    """The declaration of ``route``'s responder for ``method`` (HEAD: the GET one's)."""
    name = "get" if method == "HEAD" and not _own_head(route) else method.lower()
    declared = getattr(getattr(route.resource, f"on_{name}", None), "operation", None)
    if declared is None:
        raise LookupError(f"{method} {route.path}: the responder has no @operation declaration")
    return declared


def _own_head(route: Route) -> bool:
    return getattr(getattr(route.resource, "on_head", None), "operation", None) is not None


def check(routes: Iterable[Route] = ROUTES) -> None:
    """Raise ``LookupError`` unless every responder of ``routes`` is declared."""
    for route in routes:
        for method in route.methods:
            operation_of(route, method)


class _Schemas:
    """Each shape's schema, as a reference into one ``components/schemas``."""

    def __init__(self, types: list[Any]) -> None:
        unique = list(dict.fromkeys(types))
        refs, self.components = msgspec.json.schema_components(unique, ref_template=REF)
        self.of = dict(zip(unique, refs, strict=True))
        self.unused: set[str] = set()

    def query(self, shape: type) -> list[dict[str, Any]]:
        """The query parameters of a query shape (its members, each optional); the shape itself is
        no component of the document."""
        component = self.components[shape.__name__]
        self.unused.add(shape.__name__)
        return [
            {
                "name": name,
                "in": "query",
                "required": name in component.get("required", ()),
                "schema": {k: v for k, v in schema.items() if k not in ("description", "title")},
                **({"description": schema["description"]} if "description" in schema else {}),
            }
            for name, schema in component["properties"].items()
        ]


def _shapes_of(operations: Iterable[Operation]) -> list[Any]:
    found: list[Any] = [shapes.Error, *shapes.EVENTS.values(), shapes.WebhookBody]
    for op in operations:
        found.append(op.query)
        if op.body is not None:
            found.append(op.body)
        for answer in op.answers.values():
            if isinstance(answer, tuple) and isinstance(answer[1], tuple):
                found.extend(one for one in answer[1] if not isinstance(one, str))  # one of these
            elif isinstance(answer, tuple) and answer[1] is not None and not isinstance(answer[1], str):
                found.append(answer[1])
    return found


def _path_parameters(route: Route, declared: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    given = {p["name"]: p for p in declared if p["in"] == "path"}
    out = []
    for name, converter in re.findall(r"\{(\w+)(?::([^}]*))?\}", route.template):
        if name in given:
            out.append(given[name])
            continue
        schema: dict[str, Any] = {"type": "string"}
        bounds = re.fullmatch(r"int\(min=(\d+), max=(\d+)\)", converter or "")
        if bounds:
            schema = {"type": "integer", "minimum": int(bounds[1]), "maximum": int(bounds[2])}
        out.append({"name": name, "in": "path", "required": True, "schema": schema})
    return out


def _response(
    status: int, answer: str | tuple[str, Any], schemas: _Schemas, headers: dict, head: bool
) -> dict:
    if isinstance(answer, str):
        description, shape = answer, shapes.Error
    else:
        description, shape = answer
    response: dict[str, Any] = {"description": description}
    if shape is not None and not head:
        if isinstance(shape, str):
            response["content"] = {shape: {"schema": {"type": "string"}}}
        elif isinstance(shape, tuple) and all(isinstance(one, str) for one in shape):
            response["content"] = {one: {"schema": {"type": "string"}} for one in shape}
        elif isinstance(shape, tuple):
            response["content"] = {JSON: {"schema": {"anyOf": [schemas.of[one] for one in shape]}}}
        else:
            response["content"] = {JSON: {"schema": schemas.of[shape]}}
    merged = {**_HEADERS.get(status, {}), **headers.get(status, {})}
    json_body = (
        shape is not None
        and not isinstance(shape, str | tuple)
        or (isinstance(shape, tuple) and not isinstance(shape[0], str))
    )
    if json_body or status == 304:
        merged["Vary"] = {"$ref": "#/components/headers/Vary"}
    if json_body and 200 <= status < 300:
        merged["Content-Encoding"] = {"$ref": "#/components/headers/Content-Encoding"}
    if merged:
        response["headers"] = merged
    return response


def _operation(route: Route, method: str, op: Operation, schemas: _Schemas) -> dict[str, Any]:
    resource = route.resource
    private = getattr(resource, "auth_required", False)
    optional = getattr(resource, "auth_optional", False)
    answers: dict[int, Any] = {**_SERVER, **_SHARED["query"]}
    if op.body is not None:
        answers |= _SHARED["body"]
    if private or optional:
        answers |= _SHARED["private"]
    if (private or optional) and method not in browser.SAFE_METHODS:
        answers |= _SHARED["csrf"]
    if route.path not in EXEMPT_PATHS:
        answers |= _SHARED["limited"]
    answers |= dict(op.answers)
    head = method == "HEAD"
    doc: dict[str, Any] = {"summary": op.summary if not head else f"{op.summary} (headers only)"}
    if op.description:
        doc["description"] = op.description
    parameters = [
        *_path_parameters(route, op.parameters),
        *schemas.query(op.query),
        *(p for p in op.parameters if p["in"] != "path"),
    ]
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        media: dict[str, Any] = {"schema": schemas.of[op.body]}
        if op.example is not None:
            media["example"] = op.example
        doc["requestBody"] = {"required": True, "content": {JSON: media}}
    cookie = (
        {"sessionCookie": []} if method in browser.SAFE_METHODS else {"sessionCookie": [], "csrfToken": []}
    )
    if private:
        doc["security"] = [{"bearerAuth": []}, cookie]
    elif optional:
        doc["security"] = [{}, {"bearerAuth": []}, {"accessToken": []}, cookie]
    doc["responses"] = {
        str(status): _response(status, answers[status], schemas, dict(op.headers), head)
        for status in sorted(answers)
    }
    return doc


def document(routes: Iterable[Route] = ROUTES) -> dict[str, Any]:
    """The OpenAPI document of ``routes`` (each responder must be declared)."""
    check(ROUTES)
    routes = tuple(routes)
    declared = {(route, method): operation_of(route, method) for route in routes for method in route.methods}
    schemas = _Schemas(_shapes_of(declared.values()))
    paths: dict[str, Any] = {}
    for (route, method), op in declared.items():
        paths.setdefault(route.path, {})[method.lower()] = _operation(route, method, op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "uBot",
            "version": VERSION,
            "description": 'Crypto market data and alerts. Errors are JSON {"title", "description"}, '
            'with "field" (and "column" for conditions) when a request field is at fault. A 400 means '
            "the request does not fit this document; a 422 a rule the document states in words. "
            "Requests the HTTP server refuses before uBot reads them get the same shape: 400 (not valid "
            f"HTTP), 414 (a request line over {LIMIT_REQUEST_LINE} bytes), 431 (over {LIMIT_REQUEST_FIELDS} "
            f"header fields or one over {LIMIT_REQUEST_FIELD_SIZE} bytes). JSON answers of at least "
            f"{MIN_BYTES} bytes are gzipped when Accept-Encoding allows it (Content-Encoding: gzip, "
            "Vary: Accept-Encoding; a weak ETag). "
            "Times are ISO-8601 UTC; start, end and since also accept epoch milliseconds. "
            f"GET /v1/stream is {MEDIA_EVENT_STREAM}: each event's data fits the schema named after it.",
        },
        "paths": paths,
        "webhooks": {
            "alert": {
                "post": {
                    "summary": "A strategy's alerts of one tick, POSTed to the user's webhook_url",
                    "description": "Headers: X-Ubot-Delivery (the body's delivery_id, the same on every "
                    "retry) and, with a webhook_secret, X-Ubot-Signature: t=<unix seconds>,v1=<hex "
                    'HMAC-SHA256 of "<t>.<raw body>">; refuse a t more than 5 minutes away. See docs/alerts.md.',
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": REF.format(name="WebhookBody")}}},
                    },
                    "responses": {"200": {"description": "any 2xx: received (others are retried or fail)"}},
                }
            }
        },
        "components": {
            "schemas": {k: v for k, v in schemas.components.items() if k not in schemas.unused},
            "headers": _GZIP_HEADERS,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "POST /v1/sessions gives one",
                },
                "sessionCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": browser.SESSION_COOKIE,
                    "description": "the dashboard's session (POST /v1/sessions/browser sets it)",
                },
                "csrfToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": browser.CSRF_HEADER,
                    "description": f"with the session cookie, on every request that changes something: "
                    f"the value of the {browser.CSRF_COOKIE} cookie",
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
