"""UserManager actor: owns the user tables (accounts, sessions, settings, strategies).

The gateway calls the plain :class:`~ubot.users.manager.UserManager` through this actor's proxy
(``ref.proxy().manager.register(...)``, a pykka future; see ``Gateway.ask_users``): every call runs
in this actor's thread and database connection, one at a time, so account and strategy limits
cannot race. A domain exception raised by a call (``ubot/users/errors.py``) comes back through the
future and does not stop the actor. No call here waits for argon2: the gateway hashes in its own pool
between the steps of a login, sign-up or password change (``ubot/users/accounts.py``), and checks
tokens on its own read path (``ubot/users/sessions.py``).

The Scanner tells it three things (``ubot/scan/messages.py``): :class:`WatchStrategies` (answered
with every user's strategies; from then on the Scanner is told each user's strategies after every
change, through the manager's ``changed`` hook), :class:`DisableStrategy` and
:class:`StrategyErrors`. The system tells it :class:`~ubot.notify.messages.TellReleases` (the
Notifier that sends what a mute held: told of each release through the manager's ``released`` hook). No one waits for those: a failure is logged and never stops the actor.
It dispatches on the message's type like every actor (``actors/stage.py``); a message of no known
type is logged, not raised: this actor serves every login.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any

import pykka

from ubot.actors.stage import not_fatal
from ubot.models.db import close_connection
from ubot.notify.messages import Released, TellReleases
from ubot.scan.messages import DisableStrategy, StrategyErrors, WatchStrategies
from ubot.users.manager import UserManager

log = logging.getLogger(__name__)


class UserManagerActor(pykka.ThreadingActor):
    def __init__(self, manager: UserManager, on_changed: Callable[[int], object] | None = None) -> None:
        """``on_changed(user_id)``: also called after each change (a gateway role publishes
        ``StrategiesChanged`` on the bus, for the engine's Scanner)."""
        super().__init__()
        self.manager = pykka.traversable(manager)
        self.scanner: pykka.ActorRef | None = None
        self.on_changed = on_changed
        manager.changed = self._changed

    def on_stop(self) -> None:
        close_connection()

    @functools.singledispatchmethod
    def on_receive(self, message: Any) -> Any:
        # the type only: a message's fields may hold a password
        log.error("user manager: unexpected message %s", type(message).__name__)

    @on_receive.register
    def _watch(self, message: WatchStrategies) -> Any:
        self.scanner = message.scanner
        return self.manager.all_specs(message.stop)

    @on_receive.register
    def _tell_releases(self, message: TellReleases) -> None:
        notifier = message.notifier

        def released(ids: tuple[int, ...], due_ms: int) -> None:
            # stopping: the outbox has them, resumed at the next start
            with contextlib.suppress(pykka.ActorDeadError):
                notifier.tell(Released(ids, due_ms))  # type: ignore[attr-defined]

        self.manager.released = released

    @on_receive.register
    @not_fatal
    def _disable(self, message: DisableStrategy) -> None:
        self.manager.disable_strategy(message.strategy_id, message.reason)

    @on_receive.register
    @not_fatal
    def _errors(self, message: StrategyErrors) -> None:
        self.manager.record_errors(message.errors, message.at_ms)

    def _changed(self, user_id: int) -> None:
        """The user's strategies or settings changed: tell the Scanner the user's strategies."""
        if self.on_changed is not None:
            try:
                self.on_changed(user_id)
            except Exception:  # the change is written; the relays re-read all after a bus outage
                log.exception("user manager: could not announce the change of user %d", user_id)
        if self.scanner is not None:
            try:
                self.scanner.tell(self.manager.specs_of(user_id))
            except pykka.ActorDeadError:  # stopping
                self.scanner = None
