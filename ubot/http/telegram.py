"""``POST /v1/telegram/{secret}``: Telegram's webhook, in webhook mode (``[http] public_url`` set).

The engine calls ``setWebhook`` with this URL and a ``secret_token``
(``ubot/notify/channels/telegram_updates.py``: both derived from the bot token, so every gateway
process knows them). An update is taken only when the path's secret and Telegram's
``X-Telegram-Bot-Api-Secret-Token`` header are both right (compared in constant time); it is then
answered by the same handler long polling uses (:meth:`TelegramUpdates.handle`: the UserManager's
``telegram_message``, the reply sent with ``sendMessage``).
"""

from __future__ import annotations

import hmac

import falcon

from ubot.http.api import operation
from ubot.http.gateway import Gateway
from ubot.notify.channels.telegram_updates import TelegramUpdate, TelegramUpdates
from ubot.users.manager import UserManager as U

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class TelegramWebhookResource:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._updates: TelegramUpdates | None = None

    def updates(self) -> TelegramUpdates | None:
        """The handler of this server's bot, or None when it has none with a username."""
        if self._updates is None:
            channel = self.gateway.channels.get("telegram")
            if channel is None or not getattr(channel, "bot_username", "") or not hasattr(channel, "updates"):
                return None
            self._updates = channel.updates(self._answer)
        return self._updates

    def _answer(self, chat_id: str, text: str) -> str | None:
        return self.gateway.ask_users(U.telegram_message, chat_id, text)

    @operation(
        "Telegram's webhook: one update of the bot (for Telegram only)",
        {
            204: ("handled (a reply, if any, was sent with sendMessage)", None),
            403: "the X-Telegram-Bot-Api-Secret-Token header is missing or wrong",
            404: "no such webhook (a wrong path, or no Telegram bot with a username here)",
            503: "the UserManager did not answer in time",
        },
        body=TelegramUpdate,
        example={"update_id": 501, "message": {"chat": {"id": 42}, "text": "/list"}},
        parameters=(
            {
                "name": "secret",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "the path secret uBot gave Telegram with setWebhook",
            },
            {
                "name": SECRET_HEADER,
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
                "description": "the secret_token uBot gave Telegram with setWebhook",
            },
        ),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, secret: str) -> None:
        updates = self.updates()
        if updates is None or not hmac.compare_digest(secret.encode(), updates.secrets.path.encode()):
            raise falcon.HTTPNotFound(title="Not found", description="No such webhook.")
        said = (req.get_header(SECRET_HEADER) or "").encode()
        if not hmac.compare_digest(said, updates.secrets.token.encode()):
            raise falcon.HTTPForbidden(title="Forbidden", description=f"Wrong or missing {SECRET_HEADER}.")
        updates.handle(req.context.body)
        resp.status = falcon.HTTP_204
