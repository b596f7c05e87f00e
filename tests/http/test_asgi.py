"""``ubot/http/asgi.py``: synchronous resources and middleware on the ASGI app, where each runs,
what a synchronous responder can read, the request deadline; and the hub's coroutine read."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import falcon
from falcon.testing import TestClient

from ubot.bus import InProcessBus
from ubot.http.asgi import GONE, App, Offload
from ubot.http.requestid import RequestId, current_request_id
from ubot.stream.hub import WAKE_BATCH, Pulse, StreamHub
from ubot.stream.publisher import EventPublisher

WAIT_S = 30.0


def where() -> str:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return threading.current_thread().name
    return "loop"


class Echo:
    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.seen.update(thread=where(), request_id=current_request_id())
        resp.media = {"ok": True}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.seen.update(thread=where(), media=req.get_media(), again=req.media)
        resp.media = {"length": len(req.bounded_stream.read())}

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"raw": req.bounded_stream.read().decode()}


class Record:
    """A middleware that says where each of its methods ran."""

    def __init__(self) -> None:
        self.ran: dict[str, str] = {}

    def process_request(self, req: Any, resp: Any) -> None:
        self.ran["request"] = where()

    def process_response(self, req: Any, resp: Any, resource: Any, req_succeeded: bool) -> None:
        self.ran["response"] = where()


class QuickRecord(Record):
    nonblocking = True


def test_sync_responders_run_in_the_pool_with_the_request_id() -> None:
    echo = Echo()
    app = App(middleware=[RequestId()], offload=Offload(2))
    app.add_route("/echo", echo)
    answer = TestClient(app).simulate_get("/echo", headers={"X-Request-ID": "abc-1"})
    assert answer.status_code == 200 and answer.json == {"ok": True}
    assert echo.seen["thread"].startswith("ubot-http")
    assert echo.seen["request_id"] == "abc-1"  # the context variable followed the request


def test_a_sync_responder_reads_the_body_as_under_wsgi() -> None:
    echo = Echo()
    app = App(offload=Offload(2))
    app.add_route("/echo", echo)
    client = TestClient(app)
    answer = client.simulate_post("/echo", json={"a": [1, 2]})
    assert answer.status_code == 200 and answer.json == {"length": len(b'{"a": [1, 2]}')}
    assert echo.seen["media"] == echo.seen["again"] == {"a": [1, 2]}
    assert echo.seen["thread"].startswith("ubot-http")
    assert client.simulate_put("/echo", body="plain text").json == {"raw": "plain text"}


def test_sync_middleware_runs_in_the_pool_unless_it_says_it_does_not_block() -> None:
    slow, quick = Record(), QuickRecord()
    app = App(middleware=[slow, quick], offload=Offload(2))
    app.add_route("/echo", Echo())
    assert TestClient(app).simulate_get("/echo").status_code == 200
    assert slow.ran["request"].startswith("ubot-http") and slow.ran["response"].startswith("ubot-http")
    assert quick.ran == {"request": "loop", "response": "loop"}


def test_a_sync_error_handler_answers() -> None:
    class Broken:
        def on_get(self, req: Any, resp: Any) -> None:
            raise KeyError("x")

    def handler(req: Any, resp: Any, ex: Exception, params: Any) -> None:
        raise falcon.HTTPConflict(title="mapped", description=type(ex).__name__)

    app = App(offload=Offload(1))
    app.add_route("/broken", Broken())
    app.add_error_handler(KeyError, handler)
    answer = TestClient(app).simulate_get("/broken")
    assert answer.status_code == 409 and answer.json["description"] == "KeyError"


def call(app: App, scope: dict, messages: list[dict]) -> tuple[list[dict], asyncio.Event]:
    """Call the ASGI app; ``receive`` gives ``messages``, then waits for ever (a client that stops)."""
    sent: list[dict] = []

    async def run() -> asyncio.Event:
        pending = list(messages)

        async def receive() -> dict:
            if pending:
                return pending.pop(0)
            await asyncio.Event().wait()  # nothing more, ever
            raise AssertionError("unreachable")

        async def send(message: dict) -> None:
            sent.append(message)

        await asyncio.wait_for(app(scope, receive, send), WAIT_S)
        return scope[GONE]

    return sent, asyncio.run(run())


def scope(method: str, length: int | None = None) -> dict:
    headers = [(b"host", b"t")]
    if length is not None:
        headers += [(b"content-length", str(length).encode()), (b"content-type", b"application/json")]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/echo",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("t", 80),
    }


def test_a_body_that_never_comes_is_a_408_at_the_deadline() -> None:
    app = App(offload=Offload(1), request_timeout_s=0.2)  # the deadline is configuration, not a wait
    app.add_route("/echo", Echo())
    # Nothing of the body at all: refused before Falcon has the request.
    sent, _ = call(app, scope("POST", 10), [])
    assert sent[0]["status"] == 408
    assert b"was not complete within 0.2 s" in sent[1]["body"]
    # A first part, then nothing: refused by the responder's read.
    sent, _ = call(app, scope("POST", 10), [{"type": "http.request", "body": b'{"a"', "more_body": True}])
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in [(k.lower(), v) for k, v in sent[0]["headers"]]


def test_a_disconnect_sets_the_requests_client_left_event() -> None:
    app = App(offload=Offload(1))
    app.add_route("/echo", Echo())
    sent, gone = call(app, scope("GET"), [{"type": "http.disconnect"}])
    assert gone.is_set() and sent == []  # Falcon answers nobody who has left


# --- StreamHub.read_async ------------------------------------------------------------------------


def test_read_async_waits_on_the_loop_and_wakes_for_a_new_event() -> None:
    bus = InProcessBus()
    hub = StreamHub(bus, poll_s=1.0).start()
    try:
        start = hub.last_id

        async def read() -> Any:
            reading = asyncio.ensure_future(hub.read_async(start, None, WAIT_S))
            await asyncio.sleep(0)  # the reader is waiting
            entry = await asyncio.to_thread(EventPublisher(bus).publish, "snapshot", {"n": 1})
            batch = await reading
            return entry, batch

        entry, batch = asyncio.run(read())
        assert [(e.id, e.event) for e in batch.events] == [(entry, "snapshot")]
        assert batch.cursor == entry
    finally:
        hub.close()


def test_read_async_returns_when_the_client_leaves_or_the_hub_closes() -> None:
    hub = StreamHub(InProcessBus(), poll_s=1.0).start()
    start = hub.last_id

    async def left() -> Any:
        gone = asyncio.Event()
        reading = asyncio.ensure_future(hub.read_async(start, None, WAIT_S, also=gone))
        await asyncio.sleep(0)
        gone.set()
        return await reading

    batch = asyncio.run(left())
    assert batch.events == () and not batch.closed

    async def closed() -> Any:
        reading = asyncio.ensure_future(hub.read_async(start, None, WAIT_S))
        await asyncio.sleep(0)
        await asyncio.to_thread(hub.close)
        return await reading

    assert asyncio.run(closed()).closed


def test_read_async_catches_up_from_the_bus_off_the_loop() -> None:
    bus = InProcessBus()
    first = EventPublisher(bus).publish("snapshot", {"n": 0})
    older = EventPublisher(bus).publish("snapshot", {"n": 1})
    hub = StreamHub(bus, poll_s=1.0).start()  # started after both: its ring does not hold them
    try:
        threads: list[str] = []

        async def offload(fn: Any, *args: Any) -> Any:
            threads.append("offloaded")
            return await asyncio.to_thread(fn, *args)

        batch = asyncio.run(hub.read_async(first, None, WAIT_S, offload=offload))
        assert [e.id for e in batch.events] == [older]
        assert threads == ["offloaded"]
    finally:
        hub.close()


# --- fan-out: many coroutine readers, one event ---------------------------------------------------


def test_every_reader_wakes_for_one_event_with_the_same_encoded_frame_and_no_task_of_its_own() -> None:
    bus = InProcessBus()
    hub = StreamHub(bus, poll_s=1.0).start()
    readers = WAKE_BATCH * 2 + 1
    try:
        start = hub.last_id

        async def read() -> Any:
            loop = asyncio.get_running_loop()
            left = [loop.create_future() for _ in range(readers)]  # the clients' "gone", as Session's
            reading = [asyncio.ensure_future(hub.read_async(start, None, WAIT_S, also=f)) for f in left]
            await asyncio.sleep(0)  # every reader is waiting
            waiting = len(asyncio.all_tasks())
            entry = await asyncio.to_thread(EventPublisher(bus).publish, "snapshot", {"n": 1})
            return waiting, entry, await asyncio.gather(*reading)

        waiting, entry, batches = asyncio.run(read())
        assert waiting == readers + 1  # the readers and this coroutine: no task per read
        assert {b.events[0].id for b in batches} == {entry}
        frames = {id(b.events[0].sse) for b in batches}
        assert len(frames) == 1  # encoded once, for every reader
        assert batches[0].events[0].sse.startswith(f"id: {entry}\nevent: snapshot\ndata: ".encode())
    finally:
        hub.close()


def test_a_pulse_wakes_its_waiters_in_batches_and_the_loop_serves_others_in_between() -> None:
    async def run() -> tuple[int, int]:
        pulse = Pulse(asyncio.get_running_loop())
        waiters = [pulse.waiter() for _ in range(WAKE_BATCH * 2 + 1)]
        waits = [asyncio.ensure_future(pulse.wait(w, WAIT_S)) for w in waiters]
        await asyncio.sleep(0)
        seen = []
        pulse.fire()
        await asyncio.sleep(0)  # the pulse's callback is queued now; this one after it
        asyncio.get_running_loop().call_soon(lambda: seen.append(sum(w.done() for w in waiters)))
        fired = await asyncio.gather(*waits)
        return seen[0], fired.count(True)

    woken_before_others, fired = asyncio.run(run())
    assert 0 < woken_before_others < WAKE_BATCH * 2 + 1
    assert fired == WAKE_BATCH * 2 + 1


def test_a_wait_ends_when_its_future_is_done_or_at_its_timeout() -> None:
    async def run() -> tuple[bool, bool, int]:
        loop = asyncio.get_running_loop()
        pulse = Pulse(loop)
        left = loop.create_future()
        leaving = asyncio.ensure_future(pulse.wait(pulse.waiter(), WAIT_S, left))
        await asyncio.sleep(0)
        left.set_result(None)
        timed = await pulse.wait(pulse.waiter(), 0.0)
        return await leaving, timed, len(pulse._waiters)

    left, timed, remaining = asyncio.run(run())
    assert (left, timed) == (False, False)
    assert remaining == 0  # nothing is kept for the next fire
