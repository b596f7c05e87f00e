"""Reading the bot's messages: ``/start <token>`` links the chat that sent it (verified destinations).

A user asks for a Telegram link (``POST /v1/me/destinations/telegram/verify``), opens
``https://t.me/<bot>?start=<token>`` and presses Start: Telegram sends ``/start <token>`` to the bot
from their chat. :class:`TelegramUpdates` reads it with ``getUpdates`` long polling
(``POST {base_url}/bot{token}/getUpdates`` with ``offset`` and ``timeout``) and hands ``(token, chat
id)`` to ``on_start`` (the UserManager's ``link_telegram``), which links that chat when the token is
a live one. ``offset`` moves past every update read, so each is handled once; other messages are
ignored. A plain class: :meth:`poll` does one call; :meth:`run` loops until told to stop, waiting
``retry_s`` after a failed call. The bot token is in the URL: it is never logged.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

import requests

from ubot.notify.channels.http import json_body, new_session, post_within

log = logging.getLogger(__name__)

#: ``/start <token>`` (``/start@botname <token>`` in a group); Telegram's start parameter is at most
#: 64 of A-Z a-z 0-9 _ -.
START = re.compile(r"/start(?:@[A-Za-z0-9_]{5,32})?\s+([A-Za-z0-9_-]{1,64})\s*")


class TelegramUpdates:
    def __init__(
        self,
        *,
        bot_token: str,
        on_start: Callable[[str, str], bool],
        base_url: str = "https://api.telegram.org",
        poll_s: int = 30,
        retry_s: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        """``on_start(token, chat_id)``: link the chat; whether the token was a live one.
        ``poll_s``: how long Telegram holds a getUpdates call open when there is nothing new."""
        self._token = bot_token
        self.on_start = on_start
        self.base_url = base_url.rstrip("/")
        self.poll_s = poll_s
        self.retry_s = retry_s
        self._session = session or new_session()
        #: The next update id to read (Telegram forgets those before it once asked with it).
        self.offset: int | None = None

    def __repr__(self) -> str:
        return f"TelegramUpdates(base_url={self.base_url!r})"

    def poll(self) -> int | None:
        """One ``getUpdates`` call: the chats linked, or None when the call failed."""
        document: dict[str, Any] = {"timeout": self.poll_s, "allowed_updates": ["message"]}
        if self.offset is not None:
            document["offset"] = self.offset
        sent = post_within(
            self._session,
            f"{self.base_url}/bot{self._token}/getUpdates",
            what="Telegram",
            deadline_s=self.poll_s + 10,
            timeout_s=self.poll_s + 10,
            json=document,
        )
        if not isinstance(sent, tuple):
            log.warning("telegram getUpdates: %s", sent.detail)
            return None
        response, body = sent
        doc = json_body(body)
        if response.status_code != 200 or not isinstance(doc, dict) or doc.get("ok") is not True:
            said = doc.get("description") if isinstance(doc, dict) else None
            log.warning("telegram getUpdates: HTTP %d %s", response.status_code, str(said or "")[:120])
            return None
        linked = 0
        for update in doc.get("result") or ():
            if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
                continue
            self.offset = max(self.offset or 0, update["update_id"] + 1)
            start = _start_of(update.get("message"))
            if start is not None and self.on_start(*start):
                linked += 1
        return linked

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set (a call under way ends by its own timeout)."""
        while not stop.is_set():
            try:
                ok = self.poll() is not None
            except Exception:  # keep reading: a bad update must not end the linking of every user
                log.exception("telegram getUpdates failed")
                ok = False
            if not ok:
                stop.wait(self.retry_s)


def _start_of(message: Any) -> tuple[str, str] | None:
    """``(token, chat id)`` of a ``/start <token>`` message, else None."""
    if not isinstance(message, dict) or not isinstance(message.get("text"), str):
        return None
    chat = message.get("chat")
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    if not isinstance(chat_id, int) or isinstance(chat_id, bool) or chat_id == 0:
        return None
    found = START.fullmatch(message["text"])
    return None if found is None else (found.group(1), str(chat_id))


class Poller:
    """:meth:`TelegramUpdates.run` in a daemon thread: :meth:`stop` does not wait for the call
    under way (it ends by its own timeout; nothing is lost: an update not acknowledged by the next
    ``offset`` is read again at the next start)."""

    def __init__(self, updates: TelegramUpdates) -> None:
        self.updates = updates
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=updates.run, args=(self._stop,), name="telegram-updates", daemon=True
        )

    def start(self) -> Poller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
