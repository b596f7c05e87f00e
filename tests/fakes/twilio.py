"""A fake Twilio Messages API: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``.

HTTP basic auth ``AccountSid:AuthToken``; form fields ``To``, ``From``, ``Body``. A message is
answered 201 with Twilio's message resource (``sid`` "SM...", ``status`` "queued", ``num_segments``
as a string...). Errors are Twilio's JSON: ``{"code","message","more_info","status"}``: 20003 (401,
bad credentials), 20404 (404), 21211 (invalid To), 21602 (no Body), 21604 (no To), 21606 (From not
the account's), 21610 (unsubscribed recipient, :attr:`FakeTwilio.unsubscribed`), 21617 (body over
1,600 characters), 21910 (From and To of different channels); 20429 (429) with :func:`too_many`.

``num_segments`` is computed independently of uBot's own arithmetic (a plain count of septets or
UTF-16 units divided into 160/153 or 70/67), so tests can cross-check the channel's shortening.
"""

from __future__ import annotations

import base64
import itertools
import math
import re

from tests.fakes.base import Drip, Drop, Flood, Hang, HttpFake, Reply, Request

__all__ = [
    "ACCOUNT_SID",
    "AUTH_TOKEN",
    "FROM",
    "Drip",
    "Drop",
    "FakeTwilio",
    "Flood",
    "Hang",
    "Reply",
    "error",
    "too_many",
]

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f00dcafe" * 4
FROM = "+15005550006"
DATE = "Mon, 24 Nov 2025 08:31:00 +0000"
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_GSM = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXT = set("\f^{}\\[~]|€")


def error(code: int, message: str, status: int = 400, headers: dict[str, str] | None = None) -> Reply:
    doc = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Reply(status, doc, headers or {})


def too_many(retry_after: int | str | None = None) -> Reply:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return error(20429, "Too Many Requests", 429, headers)


def segments(body: str) -> int:
    if all(char in _GSM or char in _GSM_EXT for char in body):
        units, single, part = len(body) + sum(char in _GSM_EXT for char in body), 160, 153
    else:
        units, single, part = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / part)


class FakeTwilio(HttpFake):
    def __init__(
        self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN, numbers: tuple[str, ...] = (FROM,)
    ) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.numbers = set(numbers)
        self.unsubscribed: set[str] = set()
        self.messages: list[dict[str, object]] = []
        self._sids = itertools.count(1)

    def answer(self, request: Request) -> Reply:
        if not self._authorised(request):
            return error(20003, "Authenticate", 401, {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        if (
            request.path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
            or request.method != "POST"
        ):
            return error(20404, f"The requested resource {request.path} was not found", 404)
        form = request.form()
        to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not to:
            return error(21604, "A 'To' phone number is required.")
        if to.startswith("whatsapp:") != sender.startswith("whatsapp:"):
            return error(21910, "Invalid From and To pair. From and To should be of the same channel")
        bare_to = to.removeprefix("whatsapp:")
        if not _E164.fullmatch(bare_to):
            return error(21211, f"The 'To' number {bare_to} is not a valid phone number.")
        if sender.removeprefix("whatsapp:") not in self.numbers:
            return error(
                21606,
                f"The From phone number {sender} is not a valid, SMS-capable inbound phone number "
                "or short code for your account.",
            )
        if bare_to in self.unsubscribed:
            return error(21610, "Attempt to send to unsubscribed recipient")
        if not body:
            return error(21602, "Message body is required.")
        if len(body) > 1600:
            return error(21617, "The concatenated message body exceeds the 1600 character limit.")
        sid = f"SM{next(self._sids):032x}"
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        message = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": DATE,
            "date_sent": None,
            "date_updated": DATE,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": to,
            "uri": f"{uri}.json",
        }
        with self.lock:
            self.messages.append(message)
        return Reply(201, message)

    def _authorised(self, request: Request) -> bool:
        scheme, _, encoded = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.account_sid and password == self.auth_token
