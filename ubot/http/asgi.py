"""The gateway on ASGI: ``falcon.asgi.App``, with uBot's synchronous responders and middleware
running unchanged.

Every responder and middleware of the gateway was written for WSGI: plain functions that ask an
actor, read the database or hash a password, all of which block. On ASGI they must never run on the
event loop, so the app adapts them once, when it is built (:func:`asyncify_resource`,
:func:`asyncify_middleware`), and a resource or middleware added later needs nothing of its own:

* a synchronous responder (``on_get``, ``on_post``, ...) runs in :class:`Offload`, a bounded thread
  pool (``[http] threads``), with the request's context variables (the request id of the log lines).
  The request body is read first, on the loop; in the thread, :class:`Request` reads as a WSGI
  request does (``bounded_stream.read()``, ``get_media()``, ``media``);
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
import io
import types
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import falcon
import falcon.asgi
from falcon._typing import _UNSET

from ubot.http.server import error_response_parts

T = TypeVar("T")

#: The key of the client-left event in the ASGI scope.
GONE = "ubot.gone"
#: Where the body read on the loop waits in ``req.context`` for a sync responder.
RAW_BODY = "raw_body"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
DEFAULT_REQUEST_TIMEOUT_S = 10.0
DEFAULT_THREADS = 8


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


def _in_loop_thread() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Request(falcon.asgi.Request):
    """Falcon's ASGI request, readable as a WSGI one from a pool thread: there ``stream`` and
    ``bounded_stream`` are the body already read (a file), ``get_media()`` and ``media`` the decoded
    body; on the loop they are Falcon's coroutines as usual."""

    @property
    def stream(self) -> Any:  # type: ignore[override]
        if _in_loop_thread():
            return super().stream
        return io.BytesIO(getattr(self.context, RAW_BODY, None) or b"")

    @property
    def bounded_stream(self) -> Any:  # type: ignore[override]
        return self.stream

    def get_media(self, default_when_empty: Any = _UNSET) -> Any:  # type: ignore[override]
        if _in_loop_thread():
            return super().get_media(default_when_empty)
        raw = getattr(self.context, RAW_BODY, None) or b""
        handler, _, deserialize_sync = self.options.media_handlers._resolve(
            self.content_type, self.options.default_media_type
        )
        try:
            if deserialize_sync is not None:
                return deserialize_sync(raw)
            return handler.deserialize(io.BytesIO(raw), self.content_type, len(raw))
        except falcon.MediaNotFoundError:
            if default_when_empty is not _UNSET:
                return default_when_empty
            raise

    media = property(get_media)  # type: ignore[assignment]


def asyncify_responder(
    responder: Callable[..., Any], offload: Offload, resource: Any
) -> Callable[..., Awaitable[Any]]:
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
_WS_HOOKS = ("process_request_ws", "process_resource_ws")  # Falcon takes these as they are named


def asyncify_middleware(component: Any, offload: Offload) -> Any:
    """``component`` as ASGI middleware: its synchronous methods run in ``offload``, or on the loop
    when the class says ``nonblocking = True``. A component with coroutine methods is returned as
    it is."""
    methods = {name: getattr(component, name, None) for name in _HOOKS + _WS_HOOKS}
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
        target = name if name in _WS_HOOKS else f"{name}_async"
        setattr(adapter, target, types.MethodType(wrapped, adapter))
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
    """``falcon.asgi.App`` that adapts what it is given (module docstring): middleware, every
    resource's responders (:meth:`add_route`, so a resource added later needs nothing of its own)
    and error handlers; with the client-left event and the request deadline."""

    def __init__(
        self,
        *,
        middleware: Any = None,
        offload: Offload | None = None,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        **kwargs: Any,
    ) -> None:
        self.offload = offload or Offload(DEFAULT_THREADS)
        self.request_timeout_s = request_timeout_s
        if middleware is not None:
            if not isinstance(middleware, list | tuple):
                middleware = [middleware]
            middleware = [asyncify_middleware(m, self.offload) for m in middleware]
        kwargs.setdefault("request_type", Request)
        super().__init__(middleware=middleware, **kwargs)

    def add_route(self, uri_template: str, resource: object, **kwargs: Any) -> None:
        super().add_route(uri_template, asyncify_resource(resource, self.offload), **kwargs)

    def add_middleware(self, middleware: Any) -> None:  # type: ignore[override]
        if not isinstance(middleware, list | tuple):
            middleware = [middleware]
        super().add_middleware([asyncify_middleware(m, self.offload) for m in middleware])

    def add_error_handler(self, exception: Any, handler: Any = None) -> None:  # type: ignore[override]
        if handler is not None and not inspect.iscoroutinefunction(handler) and inspect.isfunction(handler):
            handler = asyncify_error_handler(handler)
        super().add_error_handler(exception, handler)

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
                except TimeoutError:
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
