"""What a responder takes and answers, declared next to it with :func:`operation`.

``@operation(...)`` on ``on_get``/``on_post``/... does two things with one declaration:

* before the responder runs, the query string is decoded into ``query`` (every operation has one:
  an unknown parameter, a repeated one or a malformed value is a 400 naming it) and the JSON body
  into ``body`` (400 naming the member), as ``req.context.query`` and ``req.context.body``;
* :mod:`ubot.http.openapi` reads it back (``responder.operation``) to write the document.

``answers``: status -> ``"why"`` (an error, in the uniform shape) or ``("what", shape)`` (``None``:
no body). The answers every operation of a kind shares (400 for a body or query, 401 for a private
route, 411/413/415 for a body, 429 from the rate limits) are added by the document.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import falcon
import msgspec
import msgspec.inspect
import numpy as np

from ubot.http.errors import HTTPFieldError
from ubot.http.shapes import Query
from ubot.users.shapes import field_of


@dataclass(frozen=True)
class Operation:
    summary: str
    answers: Mapping[int, str | tuple[str, Any]]
    query: type[Query] = Query
    body: type | None = None
    example: Any = None
    description: str | None = None
    headers: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    parameters: tuple[dict[str, Any], ...] = ()  # headers the operation reads


def operation(summary: str, answers: Mapping[int, str | tuple[str, Any]], **declared: Any) -> Callable:
    """Declare a responder's query, body and answers (see the module docstring)."""
    spec = Operation(summary, answers, **declared)
    query_decoder = _query_decoder(spec.query)
    body_shape = spec.body

    def decorate(responder: Callable) -> Callable:
        def prepare(req: falcon.Request) -> None:
            req.context.query = query_decoder(req.params)
            if body_shape is not None:
                req.context.body = _decode_body(req, body_shape)

        if inspect.iscoroutinefunction(responder):  # an ASGI responder (GET /v1/stream): no body

            @functools.wraps(responder)
            async def coroutine(self: Any, req: Any, resp: Any, **params: Any) -> Any:
                prepare(req)
                return await responder(self, req, resp, **params)

            coroutine.operation = spec  # type: ignore[attr-defined]
            return coroutine

        @functools.wraps(responder)
        def wrapper(self: Any, req: falcon.Request, resp: falcon.Response, **params: Any) -> Any:
            prepare(req)
            return responder(self, req, resp, **params)

        wrapper.operation = spec  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _query_decoder(shape: type[Query]) -> Callable[[Mapping[str, Any]], Any]:
    """Query values are text: a member that may be an integer takes one written in decimal digits
    (``limit=5``, not ``5.0``, ``1e3`` or ``0x5``); everything else is decoded as the text it is."""
    integers = {field.name for field in msgspec.inspect.type_info(shape).fields if _takes_int(field.type)}

    def decode(params: Mapping[str, Any]) -> Any:
        values = {
            name: int(value)
            if name in integers and isinstance(value, str) and _DIGITS.fullmatch(value)
            else value
            for name, value in params.items()
        }
        try:
            return msgspec.convert(values, shape)
        except msgspec.ValidationError as error:
            name, message = field_of(error, shape)
            raise HTTPFieldError(
                falcon.HTTP_400,
                "Invalid query parameter",
                f'The "{name}" parameter is invalid: {_readable(message)}.',
                field=name,
            ) from None

    return decode


_DIGITS = re.compile(r"-?[0-9]{1,30}")


def _takes_int(info: msgspec.inspect.Type) -> bool:
    if isinstance(info, msgspec.inspect.Metadata):
        return _takes_int(info.type)
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_takes_int(t) for t in info.types)
    return isinstance(info, msgspec.inspect.IntType)


#: How deeply arrays and objects may nest in a JSON body. The deepest body a route takes nests 2
#: (a strategy's ``symbols`` inside the strategy); 32 leaves room, and keeps decoding far from
#: Python's recursion limit (about 1,000 levels: msgspec raises ``RecursionError`` there).
MAX_JSON_DEPTH = 32
#: A JSON string; one left open runs to the end, so that every match attempt succeeds and the scan
#: stays linear (possessive: no backtracking).
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
_OPENING = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSING = np.frombuffer(b"]}", dtype=np.uint8)


def json_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in the JSON text ``raw`` (brackets in strings do not
    count). A cheap scan before decoding: one regular expression and one numpy pass."""
    codes = np.frombuffer(_JSON_STRING.sub(b"", raw), dtype=np.uint8)
    steps = np.isin(codes, _OPENING).astype(np.int64) - np.isin(codes, _CLOSING)
    return int(np.cumsum(steps).max(initial=0))


def decode_json(raw: bytes) -> Any:
    """``raw`` decoded, refused with :class:`TooDeep` when it nests more than :data:`MAX_JSON_DEPTH`."""
    depth = json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise TooDeep(depth)
    return msgspec.json.decode(raw)


class TooDeep(ValueError):
    def __init__(self, depth: int) -> None:
        super().__init__(
            f"The JSON body nests arrays and objects {depth} levels deep; at most {MAX_JSON_DEPTH} "
            "are accepted."
        )


def _decode_body(req: falcon.Request, shape: Any) -> Any:
    raw = req.bounded_stream.read()
    if not raw.strip():
        raise HTTPFieldError(falcon.HTTP_400, "Missing body", "This request needs a JSON body.")
    try:
        value = decode_json(raw)
    except TooDeep as error:
        raise HTTPFieldError(falcon.HTTP_400, "JSON nested too deeply", str(error)) from None
    except msgspec.DecodeError:
        raise HTTPFieldError(falcon.HTTP_400, "Malformed JSON", "The body is not valid JSON.") from None
    try:
        return msgspec.convert(_integral(value), shape)
    except msgspec.ValidationError as error:
        name, message = field_of(error, shape)
        where = f"{name}: " if name else ""
        raise HTTPFieldError(
            falcon.HTTP_400, "Invalid request body", where + _readable(message), field=name
        ) from None


def _integral(value: Any) -> Any:
    """JSON's ``328.0`` is the integer 328 (as JSON Schema says); msgspec would refuse it for an
    ``int``, and an ``int`` is welcome wherever a ``float`` is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(item) for item in value]
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    return value


def _readable(message: str) -> str:
    return message[:200]
