"""A fake Telegram Bot API: ``POST /bot<token>/sendMessage`` with a JSON or form-encoded body, and
``getUpdates`` serving the messages users sent the bot (:meth:`FakeTelegram.user_sends`): those with
an ``update_id`` at or after ``offset``; with none, it holds the call open like Telegram's long
polling, up to ``timeout`` seconds (at most :data:`LONG_POLL_MAX_S`), until a user sends one.
``setWebhook`` and ``deleteWebhook`` are recorded (:attr:`FakeTelegram.webhook_calls`; the webhook
set is :attr:`FakeTelegram.webhook`); while a webhook is set, ``getUpdates`` is refused with 409
as Telegram does, and a webhook URL that is not HTTPS is refused (400) unless ``https_only`` is
false (a test's gateway listens on plain HTTP).

Answers as Telegram does: ``{"ok":true,"result":{<Message>}}``; errors
``{"ok":false,"error_code":N,"description":"..."}``: 401 ``Unauthorized`` (wrong token), 404
``Not Found`` (unknown method), 400 ``Bad Request: chat not found`` (a chat the bot does not know),
403 ``Forbidden: bot was blocked by the user`` (a chat in :attr:`FakeTelegram.blocked`), 400 for an
empty or too long text; and, scripted with :func:`flood`, 429 with ``parameters.retry_after``.
"""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.base import Drip, Drop, Flood, Hang, HttpFake, Reply, Request

__all__ = ["TOKEN", "Drip", "Drop", "FakeTelegram", "Flood", "Hang", "Reply", "error", "flood"]

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
BOT = {"id": 123456789, "is_bot": True, "first_name": "uBot alerts", "username": "ubot_alerts_bot"}
DATE = 1764000000
#: The longest a getUpdates call is held open here (a stopping poller's call ends by then).
LONG_POLL_MAX_S = 2.0


def error(code: int, description: str, **parameters: Any) -> Reply:
    doc: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        doc["parameters"] = parameters
    return Reply(code, doc)


def flood(retry_after: int) -> Reply:
    """Telegram's flood control answer."""
    return error(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


class FakeTelegram(HttpFake):
    def __init__(
        self, token: str = TOKEN, chats: tuple[int | str, ...] = (42, -1001234567890), https_only: bool = True
    ) -> None:
        super().__init__()
        self.https_only = https_only
        self.webhook: dict[str, Any] | None = None  # url, secret_token of the webhook set
        self.webhook_calls: list[tuple[str, dict[str, Any]]] = []  # (method, params), in order
        self.token = token
        self.chats = {str(chat) for chat in chats}
        self.blocked: set[str] = set()
        self.sent: list[dict[str, Any]] = []  # the "result" of every message sent
        self._ids = itertools.count(1)
        self.updates: list[dict[str, Any]] = []  # what users sent the bot, as Update objects
        self.offsets: list[int | None] = []  # the offset of every getUpdates call
        self._update_ids = itertools.count(500)
        self._received_ids = itertools.count(1000)
        self.arrived = threading.Condition(self.lock)  # the users' messages: apart from those sent

    def user_sends(self, chat_id: int, text: str) -> None:
        """A user writes ``text`` to the bot from the chat ``chat_id`` (served by getUpdates)."""
        chat = {"id": chat_id, "first_name": "Ada", "type": "private" if chat_id > 0 else "group"}
        message = {"message_id": next(self._received_ids), "chat": chat, "date": DATE, "text": text}
        with self.arrived:
            self.updates.append({"update_id": next(self._update_ids), "message": message})
            self.arrived.notify_all()

    def _get_updates(self, params: dict[str, Any]) -> Reply:
        offset = params.get("offset")
        offset = int(offset) if offset is not None else None
        wait_s = min(float(params.get("timeout") or 0), LONG_POLL_MAX_S)
        with self.arrived:
            self.offsets.append(offset)
            if offset is not None:  # as Telegram: updates before the offset are forgotten
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            self.arrived.wait_for(lambda: self.updates, timeout=wait_s)
            return Reply(200, {"ok": True, "result": list(self.updates)})

    def _webhook(self, method: str, params: dict[str, Any]) -> Reply:
        with self.lock:
            self.webhook_calls.append((method, params))
            if method == "deletewebhook":
                said = "Webhook was deleted" if self.webhook is not None else "Webhook is already deleted"
                self.webhook = None
                return Reply(200, {"ok": True, "result": True, "description": said})
            url = str(params.get("url", ""))
            if self.https_only and not url.startswith("https://"):
                return error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
            self.webhook = {"url": url, "secret_token": params.get("secret_token")}
            return Reply(200, {"ok": True, "result": True, "description": "Webhook was set"})

    def texts_to(self, chat_id: int) -> list[str]:
        """The texts sent to the chat ``chat_id``, in order."""
        with self.lock:
            return [m["text"] for m in self.sent if m["chat"]["id"] == chat_id]

    def answer(self, request: Request) -> Reply:
        prefix, _, method = request.path.lstrip("/").partition("/")
        if not prefix.startswith("bot") or prefix[3:] != self.token:
            return error(401, "Unauthorized")
        if method.lower() in ("setwebhook", "deletewebhook"):
            return self._webhook(method.lower(), _params(request))
        if method.lower() == "getupdates":
            if self.webhook is not None:
                return error(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook "
                    "to delete the webhook first",
                )
            return self._get_updates(_params(request))
        if method.lower() != "sendmessage":
            return error(404, "Not Found")
        params = _params(request)
        chat = str(params.get("chat_id", ""))
        text = str(params.get("text", ""))
        if not chat:
            return error(400, "Bad Request: chat_id is empty")
        if chat not in self.chats:
            return error(400, "Bad Request: chat not found")
        if chat in self.blocked:
            return error(403, "Forbidden: bot was blocked by the user")
        if not text.strip():
            return error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return error(400, "Bad Request: message is too long")
        if chat.startswith("@"):
            chat_doc = {"id": -1009876543210, "title": "Alerts", "username": chat[1:], "type": "channel"}
        elif chat.startswith("-"):
            chat_doc = {"id": int(chat), "title": "Alerts", "type": "supergroup"}
        else:
            chat_doc = {"id": int(chat), "first_name": "Ada", "username": "ada", "type": "private"}
        result = {"message_id": next(self._ids), "from": BOT, "chat": chat_doc, "date": DATE, "text": text}
        with self.lock:
            self.sent.append(result)
        return Reply(200, {"ok": True, "result": result})


def _params(request: Request) -> dict[str, Any]:
    kind = (request.header("Content-Type") or "").split(";")[0].strip()
    if kind == "application/json":
        doc = json.loads(request.body or b"{}")
        return doc if isinstance(doc, dict) else {}
    return dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
