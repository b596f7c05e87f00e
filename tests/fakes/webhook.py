"""A webhook receiver: records every request (headers and raw body) and answers 200, unless a test
scripted something else (a status with ``Retry-After``, a redirect, a hang, a dropped connection, a
drip of one byte every few seconds, a body that does not end)."""

from __future__ import annotations

from tests.fakes.base import Drip, Drop, Flood, Hang, HttpFake, Reply, Request

__all__ = ["Drip", "Drop", "FakeWebhook", "Flood", "Hang", "Reply", "Request", "redirect", "status"]


class FakeWebhook(HttpFake):
    """``with FakeWebhook() as hook: ... hook.url("/alerts") ... hook.requests``."""

    def url(self, path: str = "/hook") -> str:
        return self.base_url + path

    def answer(self, request: Request) -> Reply:
        if request.method != "POST":
            return Reply(405, "Method Not Allowed", {"Allow": "POST"})
        return Reply(200, {"received": True})


def status(code: int, body: str = "", retry_after: str | int | None = None) -> Reply:
    """A plain-text answer with this status (and ``Retry-After`` when given)."""
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return Reply(code, body, headers)


def redirect(location: str, code: int = 302) -> Reply:
    return Reply(code, "", {"Location": location})
