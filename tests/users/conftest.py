"""Fixtures for the user tests: a fake clock, a cheap argon2 hasher, a stand-in condition checker,
the store on the ``db`` fixture and a manager over them.

``fake_analyze`` stands where ``ubot.rules.analyze`` will be, with the same contract: it returns an
object with ``indicators`` (``str(i)`` like ``"rsi(14)"``) and ``fields``, and raises a ``ValueError``
with ``.message`` and ``.column``. Tests of the real language use ``pytest.importorskip("ubot.rules")``.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from argon2 import PasswordHasher

from ubot.clocks import FakeClock
from ubot.models.users import UserStore
from ubot.users.manager import UserManager
from ubot.users.passwords import Passwords

T0 = 1_700_000_000.0  # seconds: FakeClock's start
GOOD_PASSWORD = "correct horse 42"


class FakeConditionError(ValueError):
    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


class FakeIndicator:
    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def fake_analyze(text: str) -> SimpleNamespace:
    """``"rsi(14) < 30 and price > 1"`` -> indicators ``rsi(14)``, fields ``price``; a ``?`` is an
    error at its column; an empty text is an error at column 1."""
    if not text.strip():
        raise FakeConditionError("empty condition", 1)
    if "?" in text:
        raise FakeConditionError("unexpected '?'", text.index("?") + 1)
    indicators = [FakeIndicator(s.replace(" ", "")) for s in re.findall(r"[a-z_]+\([0-9, ]*\)", text)]
    words = re.findall(r"\b[a-z_][a-z0-9_]*\b(?!\s*\()", text)
    return SimpleNamespace(indicators=indicators, fields=[w for w in words if w not in ("and", "or", "not")])


def cheap_hasher() -> PasswordHasher:
    """argon2id at its minimum cost: the same code path, microseconds instead of 50 ms."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


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


@pytest.fixture
def kit() -> SimpleNamespace:
    """Helpers for test modules (which cannot import each other)."""
    return SimpleNamespace(
        T0=T0,
        T0_MS=int(T0 * 1000),
        GOOD_PASSWORD=GOOD_PASSWORD,
        fake_analyze=fake_analyze,
        FakeConditionError=FakeConditionError,
        cheap_hasher=cheap_hasher,
    )
