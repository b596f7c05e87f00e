"""Login, sign-up and password change as steps around argon2 (ubot/users/accounts.py), over the
real UserManager called directly: what the gateway runs, with the pool stood in by plain objects
that can refuse or interleave another request where the hash would run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.users import fake_analyze
from ubot.models.tables import User
from ubot.users import tokens
from ubot.users.accounts import Accounts
from ubot.users.errors import BadCredentials, Busy, Conflict, NotFound, Throttled, WrongPassword
from ubot.users.hashing import Inline
from ubot.users.manager import UserManager
from ubot.users.sessions import Revoked

PW = "correct horse 42"
NEW_PW = "battery staple 77"
ADDRESS = "198.51.100.7"


class Steps:
    """``call`` of the UserManager, directly; records what each step was given."""

    def __init__(self, manager: UserManager) -> None:
        self.manager = manager
        self.given: list[tuple[str, tuple]] = []

    def __call__(self, method: Callable[..., Any], *args: Any) -> Any:
        self.given.append((method.__name__, args))
        return method(self.manager, *args)


class Full:
    """A pool with no room left."""

    def run(self, work: Callable[..., Any], *args: Any) -> Any:
        raise Busy("every password check is taken", 1)


class Meanwhile:
    """Runs ``during()`` once, where the first hash would run (another request's turn), then the hash."""

    def __init__(self, during: Callable[[], Any]) -> None:
        self.during: Callable[[], Any] | None = during
        self.outcome: Any = None

    def run(self, work: Callable[..., Any], *args: Any) -> Any:
        if self.during is not None:
            during, self.during = self.during, None
            try:
                self.outcome = during()
            except Exception as error:
                self.outcome = error
        return work(*args)


@pytest.fixture
def steps(manager) -> Steps:
    return Steps(manager)


@pytest.fixture
def revoked() -> list[Revoked]:
    return []


def accounts(steps: Steps, revoked: list[Revoked], hashing: Any = None) -> Accounts:
    return Accounts(steps, hashing or Inline(), steps.manager.passwords, revoked.append)


@pytest.fixture
def alice(steps, revoked):
    return accounts(steps, revoked).register("alice", "alice@example.com", PW)


def test_a_full_pool_refuses_a_login_and_counts_nothing(steps, revoked, alice) -> None:
    for _ in range(10):  # more than any throttle allows
        with pytest.raises(Busy):
            accounts(steps, revoked, Full()).login("alice", "wrong password 1", ADDRESS)

    assert User.get_by_id(alice.id).failed_logins == 0
    assert accounts(steps, revoked).login("alice", PW, ADDRESS).token  # nothing left in flight


def test_a_second_attempt_of_the_same_pair_waits_for_the_first(steps, revoked, alice) -> None:
    second = lambda: accounts(steps, revoked).login("alice", PW, ADDRESS)  # noqa: E731
    meanwhile = Meanwhile(second)

    with pytest.raises(BadCredentials):
        accounts(steps, revoked, meanwhile).login("alice", "wrong password 1", ADDRESS)

    assert isinstance(meanwhile.outcome, Throttled) and meanwhile.outcome.retry_after_s == 1
    other_address = Meanwhile(lambda: accounts(steps, revoked).login("alice", PW, "203.0.113.9"))
    accounts(steps, revoked, other_address).login("alice", PW, ADDRESS)
    assert other_address.outcome.token  # another address's attempt is not held back


def test_a_password_changed_while_a_login_is_verified_refuses_the_old_one(steps, revoked, alice) -> None:
    change = lambda: accounts(steps, revoked).change_password(alice.id, PW, NEW_PW)  # noqa: E731

    with pytest.raises(BadCredentials):
        accounts(steps, revoked, Meanwhile(change)).login("alice", PW, ADDRESS)
    assert accounts(steps, revoked).login("alice", NEW_PW, ADDRESS).token


def test_two_changes_at_once_store_one_password(steps, revoked, alice) -> None:
    other = lambda: accounts(steps, revoked).change_password(alice.id, PW, "another passphrase 9")  # noqa: E731
    meanwhile = Meanwhile(other)

    with pytest.raises(Conflict) as conflict:
        accounts(steps, revoked, meanwhile).change_password(alice.id, PW, NEW_PW)
    assert conflict.value.field == "old_password"
    assert meanwhile.outcome is None  # the other one went through
    assert accounts(steps, revoked).login("alice", "another passphrase 9", None).token


def test_plain_passwords_never_go_through_the_user_manager_for_a_login_or_a_change(
    steps, revoked, alice
) -> None:
    service = accounts(steps, revoked)
    steps.given.clear()
    service.login("alice", PW, None)
    service.change_password(alice.id, PW, NEW_PW)
    with pytest.raises(WrongPassword):
        service.change_password(alice.id, "not it at all 1", PW)

    given = repr(steps.given)
    assert PW not in given and NEW_PW not in given and "not it at all" not in given


def test_whatever_ends_sessions_reports_them(steps, revoked, alice, manager) -> None:
    service = accounts(steps, revoked)
    token = service.login("alice", PW, None).token
    service.logout(token)
    assert revoked == [Revoked(alice.id, tokens.hash_token(token))]

    service.logout(token)  # already ended: nothing more to report
    assert service.logout_everywhere(alice.id) == 0
    assert revoked[1:] == [Revoked(alice.id)]

    service.change_password(alice.id, PW, NEW_PW)
    assert revoked[2:] == [Revoked(alice.id)]

    for _ in range(manager.max_sessions):
        service.login("alice", NEW_PW, None)
    assert revoked[3:] == []
    service.login("alice", NEW_PW, None)  # one more than the limit: the oldest is revoked
    assert revoked[3:] == [Revoked(alice.id)]


def test_ending_one_session_reports_that_one_and_what_the_login_said_is_kept(
    steps, revoked, alice, manager
) -> None:
    service = accounts(steps, revoked)
    token = service.login("alice", PW, ADDRESS, "browser", "Firefox/140").token
    (session,) = manager.list_sessions(alice.id, token).sessions
    assert (session.kind, session.client, session.user_agent, session.current) == (
        "browser",
        ADDRESS,
        "Firefox/140",
        True,
    )

    assert service.end_session(alice.id, session.id) == Revoked(alice.id, tokens.hash_token(token))
    assert revoked == [Revoked(alice.id, tokens.hash_token(token))]
    with pytest.raises(NotFound):
        service.end_session(alice.id, session.id)  # already ended: nothing more to report
    assert len(revoked) == 1


def test_a_login_rehashes_with_todays_parameters_in_the_pool(
    store, clock, passwords, steps, revoked, alice
) -> None:
    from argon2 import PasswordHasher

    from ubot.users.passwords import Passwords

    stronger = UserManager(
        store,
        clock,
        passwords=Passwords(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)),
        analyze=fake_analyze,
    )
    stronger_steps = Steps(stronger)
    hashes: list[str] = []

    class Counting(Inline):
        def run(self, work: Callable[..., Any], *args: Any) -> Any:
            hashes.append(work.__name__)
            return work(*args)

    Accounts(stronger_steps, Counting(), stronger.passwords).login("alice", PW, None)

    assert hashes == ["_verify"]  # verify and rehash: one job in the pool
    assert "t=2" in User.get_by_id(alice.id).password_hash
