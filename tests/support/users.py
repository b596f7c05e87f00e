"""Users in tests: a cheap argon2 hasher and a stand-in condition checker.

``fake_analyze`` stands where ``ubot.rules.analyze`` is, with the same contract: it returns an object
with ``indicators`` (``str(i)`` like ``"rsi(14)"``) and ``fields``, and raises a ``ValueError`` with
``.message`` and ``.column``. Tests of the real language use ``ubot.rules`` itself.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

from argon2 import PasswordHasher

#: Seconds: where the users tests' ``FakeClock`` starts.
T0 = 1_700_000_000.0
T0_MS = int(T0 * 1000)


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


def attack_strategy(k: int) -> dict:
    """The ``k``-th strategy of issue 12's scan attack: ``rsi(a) < 0 or rsi(b) < 0 or ...`` with 10
    distinct periods (2..500, different from one ``k`` to the next), on the top 1,000 coins."""
    periods = [2 + (10 * k + j) % 499 for j in range(10)]
    return {
        "name": f"attack {k}",
        "condition": " or ".join(f"rsi({p}) < 0" for p in periods),
        "timeframe": "1m",
        "top_n": 1000,
    }
