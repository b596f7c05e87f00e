"""The Telegram bot's commands: what a chat wrote to the bot, and the reply.

Only the chat a user linked (their verified Telegram destination, ``ubot/users/destinations.py``)
can act for them:

- ``/start <token>``: the deep link of ``POST /v1/me/destinations/telegram/verify``; links the chat
  that sends it (any chat may send it: the token is the proof), and says to whom.
- ``/list``: the user's strategies: id, name, on or paused and why; the mute, if any.
- ``/pause <id|all>``, ``/resume <id|all>`` (several ids may be given): a strategy disabled or
  enabled as ``PATCH /v1/me/strategies/{id}`` with ``{"enabled": ...}`` does it (the same
  :class:`~ubot.users.manager.UserManager` call, so the same rules: a resume over the scan budget is
  refused and says why); resuming clears a pause uBot made itself (``[notify] pause_after_alerts``).
- ``/mute <duration>`` (``30m``, ``2h``, ``1d``; at most :data:`MUTE_MAX_MS`), ``/mute off``: the
  user's alerts, on every channel, are held until then like quiet hours (``notify/outbox.py:
  hold_until``: one rule for both), never dropped. Ending a mute (or shortening it) releases what it
  held: due at once, or when the quiet hours end (``UserManager.mute``).
- ``/help``; any other text from the linked chat gets the help.

Any other chat gets one short reply saying it is not linked, at most once per
:data:`NOT_LINKED_EVERY_MS` per chat and :data:`NOT_LINKED_PER_MINUTE` for all chats together, so the
bot cannot be made to send much to anyone; then nothing. A plain class: the UserManager owns one and
calls :meth:`Bot.answer` in its actor (``UserManager.telegram_message``); the time comes from the
manager's clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ubot.notify.caps import Window
from ubot.notify.words import local_time
from ubot.users.errors import Conflict, NotFound, UserError, ValidationError
from ubot.users.shapes import MUTE_MAX_MS, StrategyView

if TYPE_CHECKING:
    from ubot.users.manager import UserManager

#: One "not linked" reply per chat in this long.
NOT_LINKED_EVERY_MS = 600_000
#: "Not linked" replies to all chats together in a minute.
NOT_LINKED_PER_MINUTE = 20
#: Chats remembered for the throttle before the ones past it are forgotten.
NOT_LINKED_KEEP = 10_000
#: A reason shown in /list is cut to this many characters.
REASON_MAX = 120

HELP = (
    "uBot commands:\n"
    "/list - your strategies, on or paused\n"
    "/pause <id|all> - pause strategies (e.g. /pause 3)\n"
    "/resume <id|all> - resume them (a pause by uBot too)\n"
    "/mute <duration> - hold all your alerts, on every channel, for 30m, 2h, 1d...; sent when it ends\n"
    "/mute off - end the mute\n"
    "/help - this text"
)
NOT_LINKED = (
    "This chat is not linked to a uBot account. Link it from uBot: Settings, Telegram, Verify "
    "(POST /v1/me/destinations/telegram/verify), then open the link it gives."
)

_COMMAND = re.compile(r"/([A-Za-z_]{1,32})(?:@[A-Za-z0-9_]{5,32})?(?:\s+(.*))?", re.DOTALL)
_DURATION = re.compile(r"([0-9]{1,6})\s*(m|min|mins|minutes?|h|hours?|d|days?)", re.IGNORECASE)
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
_ID = re.compile(r"#?([0-9]{1,18})")


def parse(text: str) -> tuple[str, str] | None:
    """``("pause", "3")`` for ``/pause 3`` (``/pause@bot 3`` in a group); None: not a command."""
    found = _COMMAND.fullmatch(text.strip())
    if found is None:
        return None
    return found.group(1).lower(), (found.group(2) or "").strip()


def duration_ms(text: str) -> int:
    """``30m``, ``2h``, ``1d`` (``90 minutes``, ``2 hours``...) in ms. Raises :class:`ValidationError`
    naming ``duration``."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise ValidationError("duration", f"{text.strip()[:20]!r} is not a duration: write 30m, 2h or 1d")
    amount = int(found.group(1)) * _UNIT_MS[found.group(2)[0].lower()]
    if amount <= 0:
        raise ValidationError("duration", "must be at least 1 minute")
    if amount > MUTE_MAX_MS:
        raise ValidationError(
            "duration", f"at most {MUTE_MAX_MS // 86_400_000} days: disable strategies instead"
        )
    return amount


def strategy_line(view: StrategyView) -> str:
    """``#3 BTC breakout: on`` / ``#4 dip: paused by uBot: it raised ...`` / ``#5 x: paused``."""
    if view.enabled:
        state = "on"
    elif view.paused_reason:
        reason = view.paused_reason
        state = reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 1].rstrip() + "…"
    else:
        state = "paused"
    if view.enabled and view.last_error:
        state += f" (error: {view.last_error[:60]})"
    return f"#{view.id} {view.name}: {state}"


class Bot:
    def __init__(self, manager: UserManager) -> None:
        self.manager = manager
        self._replied: dict[str, int] = {}  # chat -> when it was last told it is not linked
        self._not_linked = Window(60_000)
        self._commands: dict[str, Callable[[int, str], str]] = {
            "list": self._list,
            "pause": lambda user_id, args: self._switch(user_id, args, False),
            "resume": lambda user_id, args: self._switch(user_id, args, True),
            "mute": self._mute,
        }

    def answer(self, chat_id: str, text: str) -> str | None:
        """The reply to ``text`` sent by the chat ``chat_id``, or None: send nothing."""
        command = parse(text)
        if command is not None and command[0] == "start" and command[1]:
            return self._start(chat_id, command[1])
        users = self.manager.store.telegram_users(chat_id)
        if not users:
            return self._tell_not_linked(chat_id)
        if len(users) > 1:
            return (
                "This chat is linked to several uBot accounts: link it to one only (change telegram_chat_id)."
            )
        if command is None or command[0] not in self._commands:
            return HELP
        try:
            return self._commands[command[0]](users[0], command[1])
        except UserError as error:
            return _said(error)

    def _start(self, chat_id: str, token: str) -> str | None:
        try:
            name = self.manager.link_telegram(token, chat_id)
        except ValidationError:
            if self.manager.store.telegram_users(chat_id):
                return "This link is unknown or has expired; this chat stays linked as it was."
            return self._not_linked_reply(
                chat_id,
                "This link is unknown, used or has expired (a link works for 1 hour): ask uBot for a "
                "new one (Settings, Telegram, Verify).",
            )
        except Conflict as error:
            return _said(error)
        return f"Linked: this chat gets the alerts of {name} on uBot.\n\n{HELP}"

    def _tell_not_linked(self, chat_id: str) -> str | None:
        return self._not_linked_reply(chat_id, NOT_LINKED)

    def _not_linked_reply(self, chat_id: str, text: str) -> str | None:
        """``text``, unless this chat was told within :data:`NOT_LINKED_EVERY_MS` or every chat
        together :data:`NOT_LINKED_PER_MINUTE` times in the last minute."""
        now = self.manager.now_ms()
        last = self._replied.get(chat_id)
        if last is not None and now - last < NOT_LINKED_EVERY_MS:
            return None
        if self._not_linked.total("all", now) >= NOT_LINKED_PER_MINUTE:
            return None
        if len(self._replied) >= NOT_LINKED_KEEP:
            self._replied = {c: t for c, t in self._replied.items() if now - t < NOT_LINKED_EVERY_MS}
        self._replied[chat_id] = now
        self._not_linked.add("all", now)
        return text

    def _list(self, user_id: int, args: str) -> str:
        views = self.manager.list_strategies(user_id)
        lines = [strategy_line(view) for view in views] or ["You have no strategies yet."]
        muted = self._muted_line(user_id)
        return "\n".join(([muted, ""] if muted else []) + lines)

    def _muted_line(self, user_id: int) -> str | None:
        until = self.manager.store.muted_until(user_id)
        now = self.manager.now_ms()
        if until is None or until <= now:
            return None
        return f"Alerts muted until {self._when(user_id, until)} (/mute off to end it)."

    def _when(self, user_id: int, at_ms: int) -> str:
        timezone = self.manager.get_settings(user_id).timezone
        return local_time(at_ms, timezone, seconds=False)

    def _switch(self, user_id: int, args: str, enabled: bool) -> str:
        verb, done = ("resume", "resumed") if enabled else ("pause", "paused")
        words = args.split()
        if not words:
            return f"Which strategy? /{verb} <id> or /{verb} all (/list shows the ids)."
        views = self.manager.list_strategies(user_id)
        if len(words) == 1 and words[0].lower() == "all":
            targets = [v.id for v in views if v.enabled != enabled]
            if not targets:
                return f"Nothing to {verb}: every strategy is {'on' if enabled else 'paused'} already."
        else:
            targets = []
            for word in words:
                found = _ID.fullmatch(word)
                if found is None:
                    return f"{word[:20]!r} is not a strategy id: /{verb} <id> or /{verb} all (/list shows the ids)."
                targets.append(int(found.group(1)))
        state = {v.id: v.enabled for v in views}
        lines = []
        for strategy_id in dict.fromkeys(targets):
            if state.get(strategy_id) == enabled:
                lines.append(f"#{strategy_id} is {'on' if enabled else 'paused'} already.")
                continue
            try:
                view = self.manager.patch_strategy(user_id, strategy_id, {"enabled": enabled})
            except NotFound:
                lines.append(f"You have no strategy #{strategy_id}.")
                continue
            except UserError as error:
                lines.append(f"#{strategy_id} not {done}: {_said(error)}")
                continue
            lines.append(f"#{view.id} {view.name}: {done}.")
        return "\n".join(lines)

    def _mute(self, user_id: int, args: str) -> str:
        now = self.manager.now_ms()
        if args.lower() == "off":
            before = self.manager.store.muted_until(user_id)
            release = self.manager.mute(user_id, None)
            if before is None or before <= now:
                return "Not muted: alerts go out as they are raised."
            held = _held(release.count)
            if release.due_ms > now:
                quiet = f"Unmuted; your quiet hours hold alerts until {self._when(user_id, release.due_ms)}"
                return f"{quiet}: {held} out then." if held else f"{quiet}."
            if held:
                return f"Unmuted: {held} out now (paced as usual); new alerts go out at once."
            return "Unmuted: new alerts go out at once."
        if not args:
            return (
                self._muted_line(user_id) or "Not muted. /mute 30m, /mute 2h or /mute 1d holds your alerts."
            )
        until = now + duration_ms(args)
        release = self.manager.mute(user_id, until)  # a shorter mute than before releases at its end
        earlier = f" The {release.count:,} held already go out then too." if release.count else ""
        return (
            f"Muted until {self._when(user_id, until)}: your alerts, on every channel, are held and "
            f"sent then (quiet hours still apply).{earlier} /mute off to end it."
        )


def _held(count: int) -> str:
    """``the 3 messages it held go`` (``/mute off``); empty for none."""
    if not count:
        return ""
    return "the message it held goes" if count == 1 else f"the {count:,} messages it held go"


def _said(error: UserError) -> str:
    message = getattr(error, "message", None)
    return message if isinstance(message, str) else error.description
