"""The SMS and WhatsApp channels: one Twilio Programmable Messaging request per alert.

``POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json``, HTTP basic auth
``AccountSid:AuthToken``, form fields ``To``, ``From``, ``Body``. For WhatsApp both numbers carry the
``whatsapp:`` prefix. Twilio answers 201 with the message resource (``sid``, ``status`` "queued",
``num_segments``...); errors are ``{"code", "message", "more_info", "status"}``.

An SMS is the alert's short text (:attr:`~ubot.notify.channel.Message.short`, written to fit one
segment: :mod:`ubot.notify.words`), or else the subject, a newline and the text; either is shortened
to at most ``max_segments`` segments (GSM-7 or UCS-2 arithmetic in :mod:`ubot.notify.channels.text`:
every segment is billed). A WhatsApp message is the text (else the subject), cut to Twilio's 1,600
characters.

Answers: 429 or error 20429 and 5xx (and timeouts, connection errors) are retried, with
``Retry-After`` when Twilio sends one; 400 (21211 invalid To, 21610 unsubscribed recipient...),
401 (20003, authentication), 403 and 404 are final, with Twilio's code and message.
"""

from __future__ import annotations

import logging
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
    scrub,
    status_class,
)
from ubot.notify.channels.text import fit_sms, sms_segments, truncate
from ubot.retry_after import retry_after_s

log = logging.getLogger(__name__)

NAMES = ("sms", "whatsapp")
#: Twilio's limit for a message body (characters), WhatsApp included.
MAX_BODY_CHARS = 1600
WHATSAPP = "whatsapp:"
RATE_LIMITED = 20429


class TwilioChannel:
    """SMS (``name="sms"``) or WhatsApp (``name="whatsapp"``) through one Twilio account.

    ``clock`` (unix seconds) is what a ``Retry-After`` date is read against (tests step it)."""

    min_interval_s = 1.0

    def __init__(
        self,
        *,
        name: str,
        account_sid: str,
        auth_token: str,
        from_number: str,
        base_url: str = "https://api.twilio.com",
        timeout_s: float = 10.0,
        deadline_s: float = 10.0,
        max_answer_bytes: int = MAX_BODY,
        max_segments: int = 3,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if name not in NAMES:
            raise ValueError(f"TwilioChannel name must be one of {', '.join(NAMES)}, not {name!r}")
        if max_segments < 1:
            raise ValueError(f"max_segments must be at least 1, not {max_segments}")
        self.name = name
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.from_number = from_number
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.max_answer_bytes = max_answer_bytes
        self.max_segments = max_segments
        self._session = new_session() if session is None else mount(session, WatchedAdapter())
        self._clock = clock

    def __repr__(self) -> str:
        return f"TwilioChannel(name={self.name!r}, account_sid={self.account_sid!r})"

    @property
    def url(self) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def destination(self, message: Message) -> str:
        """The recipient's number (without any ``whatsapp:`` prefix)."""
        return _bare(message.target)

    def body(self, message: Message) -> str:
        """The short text (SMS) or the text (WhatsApp), fitted to the segment budget (SMS) or 1,600
        characters."""
        if self.name == "whatsapp":
            return truncate(message.text.strip() or message.subject.strip(), MAX_BODY_CHARS)
        full = message.short.strip() or "\n".join(
            part for part in (message.subject.strip(), message.text.strip()) if part
        )
        return fit_sms(full, self.max_segments, max_chars=MAX_BODY_CHARS)

    def send(self, message: Message) -> Outcome:
        try:
            outcome = self._send(message)
        except Exception as exc:  # never raises
            log.error(
                "%s delivery %s: unexpected error (%s)", self.name, message.delivery_id, type(exc).__name__
            )
            outcome = Outcome(FAILED, f"Twilio: unexpected error ({type(exc).__name__})")
        outcome = Outcome(outcome.status, scrub(outcome.detail, [self._auth_token]), outcome.retry_after_s)
        return log_outcome(log, self.name, self.destination(message), outcome)

    def _send(self, message: Message) -> Outcome:
        number = self.destination(message)
        if not number:
            return Outcome(FAILED, "Twilio: no phone number")
        prefix = WHATSAPP if self.name == "whatsapp" else ""
        form = {"To": prefix + number, "From": prefix + _bare(self.from_number), "Body": self.body(message)}
        sent = post_within(
            self._session,
            self.url,
            what="Twilio",
            deadline_s=self.deadline_s,
            timeout_s=self.timeout_s,
            max_bytes=self.max_answer_bytes,
            data=form,
            auth=(self.account_sid, self._auth_token),
        )
        if isinstance(sent, Outcome):
            return sent
        response, body = sent
        return self._classify(response, json_body(body), form["Body"])

    def _classify(self, response: requests.Response, doc: Any, body: str) -> Outcome:
        http = response.status_code
        doc = doc if isinstance(doc, dict) else {}
        if 200 <= http < 300:
            sid = doc.get("sid") or "?"
            state = doc.get("status") or "accepted"
            segments = doc.get("num_segments") or (sms_segments(body) if self.name == "sms" else None)
            count = f", {segments} segment{'s' if str(segments) != '1' else ''}" if segments else ""
            return Outcome(SENT, f"Twilio message {sid} {state}{count}")
        code = doc.get("code")
        text = doc.get("message")
        said = f"error {code}: {one_line(str(text))}" if code and text else f"error {code}" if code else ""
        detail = f"Twilio: HTTP {http}" + (f", {said}" if said else "")
        if http == 429 or code == RATE_LIMITED:
            return Outcome(RETRY, detail, retry_after_s(response.headers.get("Retry-After"), self._clock()))
        if status_class(http) == RETRY:
            return Outcome(RETRY, detail, retry_after_s(response.headers.get("Retry-After"), self._clock()))
        return Outcome(FAILED, detail)


def _bare(number: str) -> str:
    number = number.strip()
    return number[len(WHATSAPP) :] if number.lower().startswith(WHATSAPP) else number
