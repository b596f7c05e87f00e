"""The Telegram channel: one ``sendMessage`` call of the Bot API per alert.

``POST {base_url}/bot{token}/sendMessage`` with JSON ``{chat_id, text, disable_web_page_preview}``.
The text is the alert's text (its first line is the headline: the subject is the e-mail's), or the
subject when there is no text, cut to Telegram's 4,096 characters counted in UTF-16 code units (:func:`~ubot.notify.channels.text.utf16_len`: Telegram's own unit for lengths
and offsets, and never less than the character count, so the cut text fits either way).

Answers: ``{"ok":true,"result":{...}}`` is sent. 429 carries ``parameters.retry_after`` (seconds) and
is retried; 5xx, timeouts and connection errors are retried; 400 (``chat not found``), 401 (a wrong
token), 403 (the bot was blocked) and 404 are final, with Telegram's description. Telegram allows
about one message per second per chat: :attr:`TelegramChannel.min_interval_s`.

The token is part of the URL, so it is kept out of everything a user or an operator sees: details
are built without requests' exception texts and scrubbed, and urllib3's debug log lines are
redacted (:func:`~ubot.notify.channels.http.redact_urllib3_logs`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import requests

from ubot.notify.channel import FAILED, RETRY, SENT, Message, Outcome
from ubot.notify.channels.http import (
    MAX_BODY,
    WatchedAdapter,
    json_body,
    log_outcome,
    mount,
    new_session,
    one_line,
    post_within,
    redact_urllib3_logs,
    scrub,
    status_class,
)
from ubot.notify.channels.telegram_updates import TelegramUpdates
from ubot.notify.channels.text import truncate, utf16_len
from ubot.retry_after import retry_after_s

log = logging.getLogger(__name__)

#: Telegram's limit for a message text (UTF-16 code units, after entity parsing).
MAX_TEXT = 4096
_INTEGER = re.compile(r"-?\d+")


class TelegramChannel:
    """Send alerts through one bot to chats (``message.target`` is the chat id or ``@channel``).

    ``clock`` (unix seconds) is what a ``Retry-After`` date is read against (tests step it)."""

    name = "telegram"
    min_interval_s = 1.0

    def __init__(
        self,
        *,
        bot_token: str,
        base_url: str = "https://api.telegram.org",
        bot_username: str = "",
        timeout_s: float = 10.0,
        deadline_s: float = 10.0,
        max_answer_bytes: int = MAX_BODY,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._token = bot_token
        #: For the deep links that link a user's chat (``[notify] telegram_bot_username``).
        self.bot_username = bot_username
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.max_answer_bytes = max_answer_bytes
        self._session = new_session() if session is None else mount(session, WatchedAdapter())
        self._clock = clock
        redact_urllib3_logs()

    def __repr__(self) -> str:
        return f"TelegramChannel(base_url={self.base_url!r})"

    def updates(self, on_message: Callable[[str, str], str | None], public_url: str = "") -> TelegramUpdates:
        """A reader of this bot's messages, answering them (``on_message(chat_id, text)``: the reply)
        with :meth:`reply`; by webhook when ``public_url`` is set (``telegram_updates.py``)."""
        return TelegramUpdates(
            bot_token=self._token,
            base_url=self.base_url,
            on_message=on_message,
            reply=self.reply,
            public_url=public_url,
        )

    def reply(self, chat_id: str, text: str) -> Outcome:
        """The bot's answer to a message of the chat ``chat_id`` (one attempt, not paced: one per
        message received)."""
        return self.send(
            Message(
                delivery_id=0,
                alert_id=0,
                channel=self.name,
                target=chat_id,
                subject="",
                text=text,
                payload={},
            )
        )

    def destination(self, message: Message) -> str:
        return message.target.strip()

    def send(self, message: Message) -> Outcome:
        try:
            outcome = self._send(message)
        except Exception as exc:  # never raises
            log.error("telegram delivery %s: unexpected error (%s)", message.delivery_id, type(exc).__name__)
            outcome = Outcome(FAILED, f"Telegram: unexpected error ({type(exc).__name__})")
        outcome = Outcome(outcome.status, scrub(outcome.detail, [self._token]), outcome.retry_after_s)
        return log_outcome(log, self.name, f"chat {self.destination(message)}", outcome)

    def _send(self, message: Message) -> Outcome:
        chat = self.destination(message)
        if not chat:
            return Outcome(FAILED, "Telegram: no chat id")
        document = {
            "chat_id": int(chat) if _INTEGER.fullmatch(chat) else chat,
            "text": message_text(message.subject, message.text),
            "disable_web_page_preview": True,
        }
        sent = post_within(
            self._session,
            f"{self.base_url}/bot{self._token}/sendMessage",
            what="Telegram",
            deadline_s=self.deadline_s,
            timeout_s=self.timeout_s,
            max_bytes=self.max_answer_bytes,
            json=document,
        )
        if isinstance(sent, Outcome):
            return sent
        response, body = sent
        return _classify(response, json_body(body), self._clock())


def message_text(subject: str, text: str) -> str:
    """The text (else the subject), cut cleanly to :data:`MAX_TEXT` UTF-16 code units."""
    return truncate(text.strip() or subject.strip(), MAX_TEXT, measure=utf16_len)


def _classify(response: requests.Response, doc: Any, now: float) -> Outcome:
    http = response.status_code
    doc = doc if isinstance(doc, dict) else {}
    if 200 <= http < 300 and doc.get("ok") is True:
        result = doc.get("result")
        message_id = result.get("message_id") if isinstance(result, dict) else None
        return Outcome(SENT, f"Telegram message {message_id}" if message_id is not None else "Telegram: sent")
    code = doc.get("error_code") if isinstance(doc.get("error_code"), int) else http
    description = doc.get("description")
    said = one_line(str(description)) if description else f"HTTP {http}"
    parameters = doc.get("parameters") if isinstance(doc.get("parameters"), dict) else {}
    if 200 <= http < 300:  # 200 without "ok": true (a proxy page, a broken answer)
        return Outcome(RETRY, f"Telegram: unexpected answer (HTTP {http})")
    if code == 429 or http == 429:
        wait = parameters.get("retry_after")
        retry_after = (
            float(wait)
            if isinstance(wait, int | float) and not isinstance(wait, bool)
            else retry_after_s(response.headers.get("Retry-After"), now)
        )
        return Outcome(RETRY, f"Telegram: {said}", retry_after)
    migrated = parameters.get("migrate_to_chat_id")
    if migrated is not None:
        said += f" (the group is now the supergroup chat {migrated})"
    status = status_class(http)
    if status == RETRY:
        return Outcome(RETRY, f"Telegram: {said}")
    return Outcome(FAILED, f"Telegram: {said} (error {code})")
