"""The gateway on ASGI: ``falcon.asgi.App``, with uBot's synchronous responders and middleware
running unchanged.

Every responder and middleware of the gateway was written for WSGI: plain functions that ask an
actor, read the database or hash a password, all of which block. On ASGI they must never run on the
event loop, so the app adapts them once, when it is built (:func:`asyncify_resource`,
:func:`asyncify_middleware`), and a resource or middleware added later needs nothing of its own:

* a synchronous responder (``on_get``, ``on_post``, ...) runs in :class:`Offload`, a bounded thread
  pool (``[http] threads``), with the request's context variables (the request id of the log lines).
  The request body is read first, on the loop (:func:`request_body` gives it to the responder);
* a synchronous middleware method runs in the same pool, unless its class says it does not block
  (``nonblocking = True``: the request id, the client address, the access log, CORS, the headers,
  the rate limits and the metrics are a few dictionary operations; they run on the loop, so that
  what they set in a context variable stays set for the request);
* a coroutine responder or middleware (``async def``) is left alone: ``GET /v1/stream`` is one.

:class:`App` adds what every request needs from the connection: ``scope["ubot.gone"]``, an
``asyncio.Event`` set when the client disconnects (an event stream ends on it within a moment, not at
its next write), and the deadline of ``[http] request_timeout``: a body that is not complete by then
is answered 408 (the headers' part of the deadline is the worker's, ``ubot/http/server.py``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import types
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import falcon
import falcon.asgi

from ubot.http.server import error_response_parts

T = TypeVar("T")

#: The key of the client-left event in the ASGI scope.
GONE = "ubot.gone"
#: What a sync responder finds in ``req.context`` when the body was read for it on the loop.
RAW_BODY = "raw_body"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
DEFAULT_REQUEST_TIMEOUT_S = 10.0


class Offload:
    """A bounded pool of threads for blocking work, called from the event loop."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ubot-http")

    async def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a pool thread, with this task's context variables."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def request_body(req: Any) -> bytes:
    """The request body: read on the loop before a sync responder ran (ASGI), else read now (WSGI)."""
    raw = getattr(req.context, RAW_BODY, None)
    if raw is not None:
        return raw
    return req.bounded_stream.read()


def asyncify_responder(responder: Callable[..., Any], offload: Offload, resource: Any) -> Callable[..., Awaitable[Any]]:
    """A coroutine responder that reads the body on the loop, then runs ``responder`` (a bound
    method) in the pool; itself a method bound to the same resource."""

    @functools.wraps(responder)
    async def run(_resource: Any, req: falcon.asgi.Request, resp: falcon.asgi.Response, **params: Any) -> Any:
        if req.method in _BODY_METHODS and getattr(req.context, RAW_BODY, None) is None:
            setattr(req.context, RAW_BODY, await req.bounded_stream.read())
        return await offload(responder, req, resp, **params)

    return types.MethodType(run, resource)


def asyncify_resource(resource: Any, offload: Offload) -> Any:
    """``resource`` with each of its synchronous responders replaced (on the instance) by one that
    runs in ``offload``; coroutine responders stay. Responders with a suffix (``on_get_x``) too."""
    for name in dir(resource):
        if not name.startswith("on_") or name.split("_")[1] not in _METHODS:
            continue
        responder = getattr(resource, name)
        if callable(responder) and not inspect.iscoroutinefunction(responder):
            setattr(resource, name, asyncify_responder(responder, offload, resource))
    return resource


_HOOKS = ("process_request", "process_resource", "process_response")


def asyncify_middleware(component: Any, offload: Offload) -> Any:
    """``component`` as ASGI middleware: its synchronous methods run in ``offload``, or on the loop
    when the class says ``nonblocking = True``. A component with coroutine methods is returned as
    it is."""
    methods = {name: getattr(component, name, None) for name in _HOOKS}
    if not any(callable(m) and not inspect.iscoroutinefunction(m) for m in methods.values()):
        return component
    on_loop = bool(getattr(component, "nonblocking", False))
    adapter = _Middleware(component)
    for name, method in methods.items():
        if method is None:
            continue
        if inspect.iscoroutinefunction(method):
            wrapped = method
        elif on_loop:
            wrapped = _on_loop(method)
        else:
            wrapped = _in_pool(method, offload)
        setattr(adapter, f"{name}_async", types.MethodType(wrapped, adapter))
    return adapter


class _Middleware:
    """A synchronous middleware component, seen by Falcon as an ASGI one."""

    def __init__(self, component: Any) -> None:
        self.component = component

    def __repr__(self) -> str:
        return f"asgi({self.component!r})"


def _on_loop(method: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def run(_self: Any, *args: Any) -> Any:
        return method(*args)

    return run


def _in_pool(method: Callable[..., Any], offload: Offload) -> Callable[..., Awaitable[Any]]:
    async def run(_self: Any, *args: Any) -> Any:
        return await offload(method, *args)

    return run


def asyncify_error_handler(handler: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """An error handler (they only map an exception to an answer) as a coroutine on the loop."""

    @functools.wraps(handler)
    async def run(req: Any, resp: Any, ex: BaseException, params: Any, **kwargs: Any) -> Any:
        return handler(req, resp, ex, params)

    return run


class RequestTimeout(falcon.HTTPError):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            falcon.HTTP_408,
            title="Request timeout",
            description=f"The request was not complete within {timeout_s:g} s ([http] request_timeout).",
            headers={"Connection": "close"},
        )


class App(falcon.asgi.App):
    """``falcon.asgi.App``, with the client-left event and the request deadline (module docstring)."""

    def __init__(self, *args: Any, request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_timeout_s = request_timeout_s

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[override]
        if scope.get("type") != "http":
            await super().__call__(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        gone = asyncio.Event()
        deadline = loop.time() + self.request_timeout_s
        body_done = False

        async def bounded_receive() -> dict:
            nonlocal body_done
            if body_done:
                message = await receive()
            else:
                try:
                    message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    raise RequestTimeout(self.request_timeout_s) from None
                body_done = message.get("type") != "http.request" or not message.get("more_body", False)
            if message.get("type") == "http.disconnect":
                gone.set()
            return message

        scope[GONE] = gone
        try:
            await super().__call__(scope, bounded_receive, send)
        except RequestTimeout as timeout:  # before Falcon had the request: the first body part
            status, headers, body = error_response_parts(408, timeout.description or "")
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
