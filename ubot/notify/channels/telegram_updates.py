"""Reading the bot's messages and answering them: by ``getUpdates`` long polling, or by a webhook.

Users write to the bot: ``/start <token>`` (the deep link that links their chat, ``POST
/v1/me/destinations/telegram/verify``), ``/list``, ``/pause``, ``/resume``, ``/mute``, ``/help``.
Each message is one Telegram ``Update`` (:class:`TelegramUpdate`, the one declaration of what uBot
reads of it); :meth:`TelegramUpdates.handle` hands its chat and text to ``on_message`` (the
UserManager's ``telegram_message``, ``ubot/users/bot.py``) and sends the reply it gets back with
``sendMessage`` (``reply``, the Telegram channel's).

Two ways to receive them, one per server (Telegram refuses ``getUpdates`` while a webhook is set):

- **long polling** (default): :meth:`TelegramUpdates.run` first removes any webhook
  (``deleteWebhook``: switching back from webhook mode), then calls ``getUpdates`` with ``offset``
  and ``timeout`` in a loop; ``offset`` moves past every update read, so each is handled once.
- **webhook** (``[http] public_url`` set): :meth:`TelegramUpdates.run` calls ``setWebhook`` with
  ``<public_url>/v1/telegram/<path secret>`` and ``secret_token`` (:func:`webhook_secrets`, both
  derived from the bot token, so every gateway process knows them and nobody else can), until
  Telegram accepts it, then ends; Telegram POSTs each update to the gateway
  (``ubot/http/telegram.py``), which checks both secrets and hands it to the same :meth:`handle`.
  A ``setWebhook`` that Telegram refuses (4xx: not HTTPS, a port it does not allow) is logged and
  long polling is used instead.

A plain class: :meth:`poll` does one call; :meth:`run` loops until told to stop, waiting ``retry_s``
after a failed call. The bot token is in the URL: it is never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import requests

from ubot.notify.channel import SENT, Outcome
from ubot.notify.channels.http import json_body, new_session, post_within

log = logging.getLogger(__name__)

#: Where Telegram POSTs updates in webhook mode: this, then the path secret.
WEBHOOK_PATH = "/v1/telegram/"


class TelegramChat(msgspec.Struct):
    id: int


class TelegramMessage(msgspec.Struct):
    chat: TelegramChat
    text: str | None = None


class TelegramUpdate(msgspec.Struct):
    """What uBot reads of a Telegram ``Update`` (every other member is ignored): a message's chat
    and text. The body of Telegram's webhook POST, and each item of ``getUpdates``."""

    update_id: int
    message: TelegramMessage | None = None


@dataclass(frozen=True)
class WebhookSecrets:
    """``path``: the last part of the webhook's URL; ``token``: Telegram's ``secret_token``, sent
    back in ``X-Telegram-Bot-Api-Secret-Token``. Both 64 hex digits."""

    path: str
    token: str

    def __repr__(self) -> str:
        return "WebhookSecrets(...)"


def webhook_secrets(bot_token: str) -> WebhookSecrets:
    """The webhook's secrets: HMAC-SHA256 of the bot token, one per purpose (the same in every
    process of a server; a new bot token makes new ones)."""

    def derive(purpose: str) -> str:
        return hmac.new(
            bot_token.encode(), f"ubot telegram webhook {purpose}".encode(), hashlib.sha256
        ).hexdigest()

    return WebhookSecrets(derive("path"), derive("secret_token"))


def webhook_url(public_url: str, secrets: WebhookSecrets) -> str:
    return f"{public_url.rstrip('/')}{WEBHOOK_PATH}{secrets.path}"


def update_of(document: Any) -> TelegramUpdate | None:
    """``document`` (a decoded Update) as a :class:`TelegramUpdate`, or None when it is not one."""
    try:
        return msgspec.convert(document, TelegramUpdate)
    except msgspec.ValidationError:
        return None


class TelegramUpdates:
    def __init__(
        self,
        *,
        bot_token: str,
        on_message: Callable[[str, str], str | None],
        reply: Callable[[str, str], Outcome] | None = None,
        base_url: str = "https://api.telegram.org",
        public_url: str = "",
        poll_s: int = 30,
        retry_s: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        """``on_message(chat_id, text)``: the reply to send (None: nothing); ``reply(chat_id,
        text)``: send it. ``public_url``: webhook mode (``[http] public_url``); empty: long polling.
        ``poll_s``: how long Telegram holds a getUpdates call open when there is nothing new."""
        self._token = bot_token
        self.on_message = on_message
        self.reply = reply
        self.base_url = base_url.rstrip("/")
        self.public_url = public_url
        self.secrets = webhook_secrets(bot_token)
        self.poll_s = poll_s
        self.retry_s = retry_s
        self._session = session or new_session()
        #: The next update id to read (Telegram forgets those before it once asked with it).
        self.offset: int | None = None

    def __repr__(self) -> str:
        return f"TelegramUpdates(base_url={self.base_url!r})"

    def handle(self, update: TelegramUpdate) -> bool:
        """Answer one update: whether a reply was sent."""
        message = update.message
        if message is None or message.text is None or message.chat.id == 0:
            return False
        chat_id = str(message.chat.id)
        answer = self.on_message(chat_id, message.text)
        if not answer or self.reply is None:
            return False
        outcome = self.reply(chat_id, answer)
        return outcome.status == SENT

    def _call(self, method: str, document: dict[str, Any], timeout_s: float) -> tuple[bool, Any]:
        """``(True, result)`` of one Bot API call that Telegram answered ok; else ``(False, the HTTP
        status)`` (``None``: no answer), logged."""
        sent = post_within(
            self._session,
            f"{self.base_url}/bot{self._token}/{method}",
            what="Telegram",
            deadline_s=timeout_s,
            timeout_s=timeout_s,
            json=document,
        )
        if not isinstance(sent, tuple):
            log.warning("telegram %s: %s", method, sent.detail)
            return False, None
        response, body = sent
        doc = json_body(body)
        if response.status_code != 200 or not isinstance(doc, dict) or doc.get("ok") is not True:
            said = doc.get("description") if isinstance(doc, dict) else None
            log.warning("telegram %s: HTTP %d %s", method, response.status_code, str(said or "")[:120])
            return False, response.status_code
        return True, doc.get("result")

    def poll(self) -> int | None:
        """One ``getUpdates`` call: the replies sent, or None when the call failed."""
        document: dict[str, Any] = {"timeout": self.poll_s, "allowed_updates": ["message"]}
        if self.offset is not None:
            document["offset"] = self.offset
        ok, result = self._call("getUpdates", document, self.poll_s + 10)
        if not ok:
            return None
        replied = 0
        for item in result if isinstance(result, list) else ():
            update_id = item.get("update_id") if isinstance(item, dict) else None
            if not isinstance(update_id, int) or isinstance(update_id, bool):
                continue
            self.offset = max(self.offset or 0, update_id + 1)
            update = update_of(item)
            if update is not None and self.handle(update):
                replied += 1
        return replied

    def set_webhook(self) -> str:
        """``setWebhook`` to this server's gateway: ``"set"``, ``"refused"`` (4xx: Telegram will
        not call that URL) or ``"failed"`` (try again)."""
        ok, status = self._call(
            "setWebhook",
            {
                "url": webhook_url(self.public_url, self.secrets),
                "secret_token": self.secrets.token,
                "allowed_updates": ["message"],
            },
            10,
        )
        if ok:
            log.info("telegram: webhook set to %s%s...", self.public_url.rstrip("/"), WEBHOOK_PATH)
            return "set"
        return "refused" if isinstance(status, int) and 400 <= status < 500 and status != 429 else "failed"

    def delete_webhook(self) -> bool:
        """``deleteWebhook`` (nothing to delete is fine too): whether Telegram said ok."""
        return self._call("deleteWebhook", {}, 10)[0]

    def run(self, stop: threading.Event) -> None:
        """Set the webhook (webhook mode), or poll until ``stop`` is set (a call under way ends by
        its own timeout)."""
        if self.public_url:
            while not stop.is_set():
                said = self.set_webhook()
                if said == "set":
                    return
                if said == "refused":
                    log.error(
                        "telegram: setWebhook refused (see above); reading the bot with getUpdates instead"
                    )
                    break
                stop.wait(self.retry_s)
        while not stop.is_set() and not self.delete_webhook():
            stop.wait(self.retry_s)
        while not stop.is_set():
            try:
                ok = self.poll() is not None
            except Exception:  # keep reading: a bad update must not end the bot for every user
                log.exception("telegram getUpdates failed")
                ok = False
            if not ok:
                stop.wait(self.retry_s)


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
