"""Sign-up, login, password change and logout as the gateway runs them: argon2 in a bounded pool
(``ubot/users/hashing.py``), every other step a call of the UserManager (``call``: the gateway's
``ask_users``, or a direct call). The UserManager's mailbox never waits for a hash, so no request
(a token check, a settings read) waits behind another user's login; a full pool refuses at once
(:class:`~ubot.users.errors.Busy`, 503 with ``Retry-After``).

Whatever ends sessions hands them to ``revoked`` before the request is answered: the gateway drops
them from its session cache and tells the other gateways (``ubot/users/sessions.py``).

A plain password never goes through the UserManager's mailbox for a login or a password change:
only hashes do (the sign-up's strength check there needs it once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ubot.users import tokens
from ubot.users.errors import ValidationError
from ubot.users.hashing import Hashing
from ubot.users.manager import UserManager as U
from ubot.users.passwords import PASSWORD_MAX, Passwords, check_strength, normalize
from ubot.users.sessions import Revoked
from ubot.users.shapes import LoginToken, SessionKind, UserView

#: ``call(UserManager.method, *args)``: run one step in the UserManager, its value or its exception.
Call = Callable[..., Any]


class Accounts:
    def __init__(
        self,
        call: Call,
        hashing: Hashing,
        passwords: Passwords,
        revoked: Callable[[Revoked], object] = lambda revoked: None,
    ) -> None:
        self.call = call
        self.hashing = hashing
        self.passwords = passwords
        self.revoked = revoked

    def register(self, username: Any, email: Any, password: Any) -> UserView:
        name, address = self.call(U.check_registration, username, email, password)
        password_hash = self.hashing.run(self.passwords.hash, password)
        return self.call(U.create_account, name, address, password_hash)

    def login(
        self,
        username: Any,
        password: Any,
        client: str | None,
        kind: SessionKind | None = None,
        user_agent: str | None = None,
    ) -> LoginToken:
        """A session for ``client`` (its address); ``kind`` and ``user_agent`` are kept with it."""
        attempt = self.call(U.begin_login, username, client, kind, user_agent)
        acceptable = isinstance(password, str) and len(password) <= PASSWORD_MAX
        try:
            ok, new_hash = self.hashing.run(
                self._verify, attempt.password_hash if acceptable else None, password if acceptable else ""
            )
        except BaseException:
            self.call(U.abandon_login, attempt)
            raise
        outcome = self.call(U.finish_login, attempt, ok, new_hash)
        if outcome.revoked is not None:
            self.revoked(outcome.revoked)
        return outcome.token

    def _verify(self, password_hash: str | None, password: str) -> tuple[bool, str | None]:
        """In the pool: whether ``password`` matches, and its new hash when the stored one was made
        with other parameters. Without a hash (no such account), the time of one verification."""
        if password_hash is None:
            return self.passwords.verify_nothing(password), None
        if not self.passwords.verify(password_hash, password):
            return False, None
        if self.passwords.needs_rehash(password_hash):
            return True, self.passwords.hash(password)
        return True, None

    def change_password(self, user_id: int, old_password: Any, new_password: Any) -> None:
        """Revokes every session of the user (this one too): they log in again with the new one."""
        check = self.call(U.begin_password_change, user_id)
        acceptable = isinstance(old_password, str) and len(old_password) <= PASSWORD_MAX
        if not (acceptable and self.hashing.run(self.passwords.verify, check.password_hash, old_password)):
            self.call(U.wrong_password, user_id)  # raises WrongPassword
        check_strength(new_password, username=check.username, email=check.email, field="new_password")
        if tokens.same(normalize(new_password), normalize(old_password)):
            raise ValidationError("new_password", "must differ from the current password")
        new_hash = self.hashing.run(self.passwords.hash, new_password)
        self.revoked(self.call(U.finish_password_change, check, new_hash))

    def logout(self, token: Any) -> None:
        revoked = self.call(U.logout, token)
        if revoked is not None:
            self.revoked(revoked)

    def end_session(self, user_id: int, session_id: int) -> Revoked:
        """Log out one of the user's sessions (by its id, ``GET /v1/me/sessions``): what ended."""
        revoked = self.call(U.end_session, user_id, session_id)
        self.revoked(revoked)
        return revoked

    def logout_everywhere(self, user_id: int) -> int:
        count = self.call(U.logout_everywhere, user_id)
        self.revoked(Revoked(user_id))
        return count
