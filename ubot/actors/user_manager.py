"""UserManager actor: owns the user tables (accounts, sessions, settings, strategies).

The gateway asks it the messages of ``ubot/users/messages.py``; the work is done by the plain
:class:`~ubot.users.manager.UserManager`. A refused request comes back as a ``Rejected`` value,
never as an exception. Everything runs in this actor's thread and database connection, one message
at a time, so account and strategy limits cannot race.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pykka

from ubot.models.db import close_connection
from ubot.scan.messages import DisableStrategy, StrategyErrors, WatchStrategies
from ubot.users import messages as m
from ubot.users.errors import Refused, ValidationError, rejected
from ubot.users.manager import UserManager

log = logging.getLogger(__name__)

#: Requests after which the Scanner must learn the user's strategies again (when they succeed).
CHANGES_STRATEGIES = (m.PutSettings, m.CreateStrategy, m.UpdateStrategy, m.PatchStrategy, m.DeleteStrategy)


class UserManagerActor(pykka.ThreadingActor):
    def __init__(self, manager: UserManager, notifier: pykka.ActorRef | None = None) -> None:
        super().__init__()
        self.manager = manager
        self.notifier = notifier
        u = manager
        self.handlers: dict[type, Callable[[Any], Any]] = {
            m.Register: lambda q: u.register(q.username, q.email, q.password),
            m.Login: lambda q: u.login(q.username, q.password, q.client),
            m.Authenticate: lambda q: u.authenticate(q.token),
            m.Logout: lambda q: u.logout(q.token),
            m.LogoutEverywhere: lambda q: u.logout_everywhere(q.user),
            m.ChangePassword: lambda q: u.change_password(q.user, q.old_password, q.new_password),
            m.GetSettings: lambda q: u.get_settings(q.user),
            m.PutSettings: lambda q: u.put_settings(q.user, q.fields),
            m.ListStrategies: lambda q: u.list_strategies(q.user),
            m.GetStrategy: lambda q: u.get_strategy(q.user, q.strategy_id),
            m.CreateStrategy: lambda q: u.create_strategy(q.user, q.fields),
            m.UpdateStrategy: lambda q: u.update_strategy(q.user, q.strategy_id, q.fields),
            m.PatchStrategy: lambda q: u.patch_strategy(q.user, q.strategy_id, q.fields),
            m.DeleteStrategy: lambda q: u.delete_strategy(q.user, q.strategy_id),
            m.ValidateCondition: lambda q: u.validate_condition(q.condition),
        }

        self.scanner: pykka.ActorRef | None = None

    def on_stop(self) -> None:
        close_connection()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, WatchStrategies):
            self.scanner = message.scanner
            return self.manager.all_specs()
        if isinstance(message, DisableStrategy | StrategyErrors):
            # Told (no one waits for an answer): a failure here must not stop the actor that serves
            # every login and strategy request. Logged; the next report or firing comes again.
            try:
                if isinstance(message, DisableStrategy):
                    self._changed(self.manager.disable_strategy(message.strategy_id))
                else:
                    self.manager.record_errors(message.errors, message.at_ms)
            except Exception:
                log.exception("user manager: could not record %s", type(message).__name__)
            return None
        handler = self.handlers.get(type(message))
        if handler is None:
            # the type only: a message's fields may hold a password
            raise TypeError(f"user manager: unexpected message {type(message).__name__}")
        try:
            reply = handler(message)
        except (ValidationError, Refused) as error:
            return rejected(error)
        if isinstance(message, CHANGES_STRATEGIES):
            self._changed(message.user)
        return reply

    def _changed(self, user_id: int | None) -> None:
        """Tell the Scanner the user's strategies as they are now."""
        if user_id is not None and self.scanner is not None:
            try:
                self.scanner.tell(self.manager.specs_of(user_id))
            except pykka.ActorDeadError:  # stopping
                self.scanner = None
