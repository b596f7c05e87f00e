"""Verified destinations: nothing but a verification message goes to an address until its owner
proves it is theirs.

Each channel's target in a user's settings (``ubot/users/validation.py`` ``CHANNEL_TARGETS``) is
``unverified``, ``pending`` (a code, link or request was sent) or ``verified``; the state belongs to
the target it was reached at (a row in the ``destination`` table, ``ubot/models/tables.py``): a
changed address is unverified again.

How each channel proves it:

- ``email``, ``sms``, ``whatsapp``: a 6-digit code sent there, given back with
  ``POST /v1/me/destinations/{channel}/confirm``; valid :data:`CODE_LIFETIME_MS`, at most
  :data:`MAX_ATTEMPTS` wrong codes (then a new one must be sent); compared as SHA-256 digests in
  constant time; only its digest is stored.
- ``email`` also by a link, when ``[http] public_url`` is set: ``<public_url>/v1/destinations/confirm?token=``
  with 256 random bits (:func:`new_link_token`), valid as long as the code, used once; no login
  needed (the token is the proof). Only its SHA-256 is stored (in ``token``), looked up by it.
  Opening the link shows a page with a Confirm button (a POST): a mail scanner that fetches every
  link in a message cannot confirm an address by itself.
- ``webhook``: a request signed like alerts (``X-Ubot-Signature``) whose body says
  ``"event": "verification"``; verified when it is answered 2xx.
- ``telegram``: a deep link ``https://t.me/<bot>?start=<token>``; the user sends ``/start <token>``
  to the bot, the poller (``ubot/notify/channels/telegram_updates.py``) reads it and links the chat
  that sent it (its id becomes ``telegram_chat_id``). Valid :data:`LINK_LIFETIME_MS`.

Sending is throttled: one verification per destination in :data:`RESEND_MS`, at most
:data:`USER_SENDS` per user in :data:`USER_WINDOW_MS` (:class:`~ubot.users.errors.Throttled`); and per
address whoever asks (an address typed into several accounts, or changed away and back): one in
:data:`RESEND_MS` and at most :data:`ADDRESS_SENDS` in :data:`USER_WINDOW_MS`, so that no number of
accounts makes uBot a flood of codes to one person. The sends are counted in the database
(:class:`SendLog`), so the limits hold for every process together (gateway workers, roles).

A plain module: the UserManager calls it with the time; the rows are read and written by
``UserStore`` (``ubot/models/users.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ubot.users.errors import NotVerified, Throttled, ValidationError

UNVERIFIED: Literal["unverified"] = "unverified"
PENDING: Literal["pending"] = "pending"
VERIFIED: Literal["verified"] = "verified"
State = Literal["unverified", "pending", "verified"]

#: Channels proved by a code sent to them.
CODE_CHANNELS = ("email", "sms", "whatsapp")
#: Channels whose code comes with a link that confirms too.
LINK_CHANNELS = ("email",)
CODE_DIGITS = 6
CODE_LIFETIME_MS = 15 * 60_000
LINK_LIFETIME_MS = 60 * 60_000
MAX_ATTEMPTS = 5
#: One verification message per destination in this long.
RESEND_MS = 60_000
#: Verification messages one user may have sent in :data:`USER_WINDOW_MS`.
USER_SENDS = 10
USER_WINDOW_MS = 3_600_000
#: Verification messages one address (e-mail, number, webhook URL) may get in :data:`USER_WINDOW_MS`,
#: from every account together.
ADDRESS_SENDS = 5


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def new_token() -> str:
    """A Telegram start parameter: at most 64 of A-Z a-z 0-9 _ - (Telegram's rule); 32 here."""
    return secrets.token_urlsafe(24)


def new_link_token() -> str:
    """A confirmation link's token: 256 random bits, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def digest(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def state_of(row: Any, target: str | None, now_ms: int) -> State:
    """The state of the destination ``target`` given its row (None: never verified)."""
    if target is None or row is None or row.target != str(target):
        return UNVERIFIED
    if row.state == VERIFIED:
        return VERIFIED
    if row.expires_at is not None and row.expires_at > now_ms:
        return PENDING
    return UNVERIFIED


def not_verified(channel: str) -> NotVerified:
    return NotVerified(
        f"your {channel} destination is not verified: POST /v1/me/destinations/{channel}/verify first",
        field="channel",
    )


@dataclass(frozen=True)
class Attempt:
    """A wrong code: how many attempts are left for it."""

    left: int


def check_code(row: Any, target: str, code: str, now_ms: int) -> Attempt | None:
    """None when ``code`` is right for ``row`` (the pending destination ``target``); an
    :class:`Attempt` when it is wrong. Raises :class:`ValidationError` naming ``code`` when there is
    nothing to confirm (no code sent, expired, too many wrong ones)."""
    if row is None or row.target != target or row.state != PENDING or row.code_hash is None:
        raise ValidationError("code", "no code was sent to this destination: ask for one with /verify first")
    if row.expires_at is None or row.expires_at <= now_ms:
        raise ValidationError("code", "the code has expired: ask for a new one with /verify")
    if row.attempts >= MAX_ATTEMPTS:
        raise ValidationError("code", f"{MAX_ATTEMPTS} wrong codes: ask for a new one with /verify")
    if hmac.compare_digest(digest(code), row.code_hash):
        return None
    return Attempt(MAX_ATTEMPTS - row.attempts - 1)


class SendLog(Protocol):
    """Where :class:`SendLimits` counts the verification messages sent: shared by every process
    (``UserStore``: rows of the ``pacing`` table). A key has a fixed number of slots, each holding
    when the send it counts leaves the window (epoch ms; 0: never used)."""

    def send_turn(self) -> AbstractContextManager[None]:
        """Held while a send is checked and counted: two processes take turns."""
        ...

    def send_slots(self, key: str, count: int) -> list[int]:
        """When each of ``key``'s ``count`` slots frees (0: never used)."""
        ...

    def take_send_slot(self, key: str, slot: int, until_ms: int) -> None:
        """Slot ``slot`` of ``key`` is busy until ``until_ms``."""
        ...


class SendLimits:
    """The throttle on verification messages, counted in ``log`` (the database), so that it holds
    across processes (several gateway workers each have a UserManager). A user has
    ``user_sends`` slots and an address ``address_sends``; a send takes a free one of each until
    :data:`USER_WINDOW_MS` later, so the busy slots are the sends in the window, and the latest
    send to an address is its last slot taken."""

    def __init__(
        self,
        log: SendLog,
        resend_ms: int = RESEND_MS,
        user_sends: int = USER_SENDS,
        address_sends: int = ADDRESS_SENDS,
    ) -> None:
        self.log = log
        self.resend_ms = resend_ms
        self.user_sends = user_sends
        self.address_sends = address_sends

    def take(
        self, user_id: int, channel: str, last_sent_ms: int | None, now_ms: int, target: str = ""
    ) -> None:
        """Count one verification message to send now, or raise :class:`Throttled` (with the wait)
        when it may not be sent. ``target``: the address (empty for Telegram, whose chat is not
        known before its link is used)."""
        user_key = f"user\0{user_id}"
        address = _address(channel, target)
        address_key = None if address is None else "address\0" + "\0".join(address)
        with self.log.send_turn():
            users = self.log.send_slots(user_key, self.user_sends)
            addresses = [] if address_key is None else self.log.send_slots(address_key, self.address_sends)
            if any(addresses):
                last_sent_ms = max(last_sent_ms or 0, max(addresses) - USER_WINDOW_MS) or None
            if last_sent_ms is not None and now_ms - last_sent_ms < self.resend_ms:
                wait = -(-(last_sent_ms + self.resend_ms - now_ms) // 1000)
                raise Throttled(
                    f"a verification was sent to this {channel} destination less than "
                    f"{self.resend_ms // 1000} s ago; try again in {wait} s",
                    retry_after_s=max(1, wait),
                )
            if _busy(users, now_ms) >= self.user_sends:
                raise Throttled(
                    f"at most {self.user_sends} verification messages in {USER_WINDOW_MS // 60_000} minutes; "
                    "try again later",
                    retry_after_s=60,
                )
            if address_key is not None and _busy(addresses, now_ms) >= self.address_sends:
                raise Throttled(
                    f"this {channel} destination got {self.address_sends} verification messages in the last "
                    f"{USER_WINDOW_MS // 60_000} minutes, the most it gets; try again later",
                    retry_after_s=600,
                )
            self.log.take_send_slot(user_key, users.index(min(users)), now_ms + USER_WINDOW_MS)
            if address_key is not None:
                self.log.take_send_slot(address_key, addresses.index(min(addresses)), now_ms + USER_WINDOW_MS)


def _busy(slots: list[int], now_ms: int) -> int:
    return sum(1 for until in slots if until > now_ms)


def _address(channel: str, target: str) -> tuple[str, str] | None:
    """The throttle's key of an address (e-mail case-insensitive); None for none (Telegram)."""
    if not target:
        return None
    return channel, target.casefold() if channel == "email" else target


#: Phone number prefixes refused for SMS and WhatsApp (E.164, with "+"): premium-rate and
#: shared-cost ranges where a message costs the sender or pays a third party. Not exhaustive: the
#: obvious ones, so that an alert cannot be turned into revenue for a premium line.
PREMIUM_PREFIXES: dict[str, str] = {
    "+1900": "a NANP 900 premium-rate number",
    "+449": "a UK 09 premium-rate number",
    "+4487": "a UK 087 revenue-sharing number",
    "+4470": "a UK 070 personal number",
    "+49900": "a German 0900 premium-rate number",
    "+49137": "a German 0137 mass-calling number",
    "+3389": "a French 089 premium-rate number",
    "+3989": "an Italian 89x premium-rate number",
    "+61190": "an Australian 190 premium-rate number",
    "+979": "an international premium-rate number",
    "+881": "a global satellite number",
    "+882": "an international network number",
    "+883": "an international network number",
}


#: NANP exchanges (the 3 digits after the area code) that are premium-rate in every area code.
NANP_PREMIUM_EXCHANGES = ("976",)


def premium(number: str) -> str | None:
    """What kind of refused number ``number`` (E.164) is, or None."""
    if number.startswith("+1") and len(number) == 12 and number[5:8] in NANP_PREMIUM_EXCHANGES:
        return f"a NANP {number[5:8]} premium-rate number"
    for prefix, kind in PREMIUM_PREFIXES.items():
        if number.startswith(prefix):
            return kind
    return None
