"""Fixtures for the user tests: a fake clock, a cheap argon2 hasher, the store on the ``db`` fixture
and a manager over them with the stand-in condition checker (``tests/support/users.py``)."""

from __future__ import annotations

import pytest

from tests.support.users import T0, cheap_hasher, fake_analyze
from ubot.clocks import FakeClock
from ubot.models.users import UserStore
from ubot.users.manager import UserManager
from ubot.users.passwords import Passwords


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def passwords() -> Passwords:
    return Passwords(cheap_hasher())


@pytest.fixture
def store(db) -> UserStore:
    return UserStore(db)


@pytest.fixture
def manager(store, clock, passwords) -> UserManager:
    return UserManager(store, clock, passwords=passwords, analyze=fake_analyze)
