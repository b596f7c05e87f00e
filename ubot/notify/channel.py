"""The one interface every delivery channel implements, and the values that cross it.

A channel turns one :class:`Message` into one provider request and reports an :class:`Outcome`; it
never raises and never sleeps. Pacing (one message per second per Telegram chat, ...), retries and
backoff are the Notifier's job: the channel only says what happened and, for a refusal that may pass,
how long the provider asked to wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

SENT: Literal["sent"] = "sent"
RETRY: Literal["retry"] = "retry"
FAILED: Literal["failed"] = "failed"


@dataclass(frozen=True)
class Message:
    """One delivery of one alert on one channel."""

    delivery_id: int
    alert_id: int
    channel: str  # "webhook" | "telegram" | "sms" | "whatsapp" | "email"
    target: str  # webhook URL, Telegram chat id, E.164 phone number, e-mail address
    subject: str  # one line (e-mail subject, first line elsewhere)
    text: str  # the rendered alert, plain text
    payload: Mapping[str, Any]  # the alert as a JSON document (the webhook body)
    secret: str | None = field(default=None, repr=False)  # webhook HMAC key, read at send time
    #: The delivery's public id: 32 hex digits (128 random bits), the same on every attempt
    #: (``X-Ubot-Delivery``, the e-mail's ``Message-ID``): a receiver's idempotency key.
    key: str = ""
    #: The text for one short message (SMS), when it differs from subject + text.
    short: str = ""


@dataclass(frozen=True)
class Outcome:
    """``sent``; ``retry`` (a fault that may pass: timeout, 5xx, 429); ``failed`` (will never work as
    configured: 400/401/403/404, a refused address). ``detail`` is one line for the user, without
    secrets. ``retry_after_s``: the provider's own wait (429 ``retry_after`` / ``Retry-After``)."""

    status: Literal["sent", "retry", "failed"]
    detail: str = ""
    retry_after_s: float | None = None


class Channel(Protocol):
    #: The channel name, as in :attr:`Message.channel`.
    name: str
    #: Minimum seconds between two messages to one destination (provider limits); 0 for none.
    min_interval_s: float

    def destination(self, message: Message) -> str:
        """The pacing key: messages to one destination are sent one after another, spaced by
        :attr:`min_interval_s`; different destinations do not wait for each other."""
        ...

    def send(self, message: Message) -> Outcome:
        """Send now: one attempt, ended by the attempt's deadline (:mod:`ubot.notify.deadline`)
        whatever the far end does; a cut attempt is a ``retry`` that says so. Never raises."""
        ...
