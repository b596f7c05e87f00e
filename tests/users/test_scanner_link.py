"""What the UserManager tells the Scanner, and what it hears back from it."""

from __future__ import annotations

import queue
from typing import Any

import pykka
import pytest

from ubot.actors.user_manager import UserManagerActor
from ubot.notify.messages import DeliveryTarget
from ubot.scan.messages import DisableStrategy, StrategyErrors, WatchStrategies
from ubot.scan.spec import UserStrategies
from ubot.timeutil import iso_from_ms
from ubot.users.errors import ValidationError
from ubot.users.manager import UserManager as U

PW = "correct horse 42"
WAIT = 10.0


class Recorder(pykka.ThreadingActor):
    def __init__(self, told: queue.Queue) -> None:
        super().__init__()
        self.told = told

    def on_receive(self, message: Any) -> Any:
        self.told.put(message)


@pytest.fixture
def link(manager):
    told: queue.Queue = queue.Queue()
    scanner = Recorder.start(told)
    ref = UserManagerActor.start(manager)
    proxy = ref.proxy()

    def ask(method: Any, *args: Any) -> Any:
        """A call of the manager through the proxy (as the gateway does); a message, asked."""
        if callable(method):
            return getattr(proxy.manager, method.__name__)(*args).get(timeout=WAIT)
        return ref.ask(method, timeout=WAIT)

    def next_told() -> Any:
        return told.get(timeout=WAIT)

    return ask, scanner, next_told, told, ref


def sign_up(ask, name: str) -> int:
    ask(U.register, name, f"{name}@example.com", PW)
    user = ask(U.authenticate, ask(U.login, name, PW, None).token)
    ask(
        U.put_settings,
        user,
        {"webhook_url": "https://hooks.example.com/x", "webhook_secret": "0123456789abcdef"},
    )
    return user


def strategy(**fields: Any) -> dict:
    return {"name": "Dip", "condition": "rsi(14) < 30", "timeframe": "1h", "top_n": 50, **fields}


def test_watching_returns_every_enabled_strategy_with_its_targets(link) -> None:
    ask, scanner, next_told, told, _ = link
    ada = sign_up(ask, "ada")
    ask(U.create_strategy, ada, strategy(channels=["webhook"]))
    ask(U.create_strategy, ada, strategy(name="Off", enabled=False))
    everyone = ask(WatchStrategies(scanner))
    assert len(everyone) == 1 and everyone[0].user_id == ada
    (spec,) = everyone[0].specs
    assert spec.name == "Dip" and spec.top_n == 50 and spec.symbols is None and spec.timeframe == "1h"
    # not verified: the delivery is written failed, never sent (tests/users/test_destinations.py)
    assert spec.deliveries == (DeliveryTarget("webhook", "https://hooks.example.com/x", unverified=True),)
    assert told.empty()


def test_every_change_tells_the_scanner_the_users_strategies_as_they_are_now(link) -> None:
    ask, scanner, next_told, _, _ = link
    ada = sign_up(ask, "ada")
    ask(WatchStrategies(scanner))
    created = ask(U.create_strategy, ada, strategy())
    assert [s.name for s in next_told().specs] == ["Dip"]
    ask(U.patch_strategy, ada, created.id, {"enabled": False})
    assert next_told() == UserStrategies(ada, ())
    ask(U.patch_strategy, ada, created.id, {"enabled": True, "channels": ["webhook"]})
    assert next_told().specs[0].deliveries[0].channel == "webhook"
    ask(
        U.put_settings,
        ada,
        {"webhook_url": "https://other.example.com/y", "webhook_secret": "0123456789abcdef"},
    )
    assert next_told().specs[0].deliveries[0].target == "https://other.example.com/y"
    ask(U.delete_strategy, ada, created.id)
    assert next_told() == UserStrategies(ada, ())


def test_a_refused_change_tells_nothing(link) -> None:
    ask, scanner, _, told, _ = link
    ada = sign_up(ask, "ada")
    ask(WatchStrategies(scanner))
    with pytest.raises(ValidationError):
        ask(U.create_strategy, ada, strategy(timeframe="7m"))
    assert told.empty()


def test_runtime_errors_are_kept_for_the_owner_and_cleared(link, clock) -> None:
    ask, scanner, _, _, ref = link
    ada = sign_up(ask, "ada")
    created = ask(U.create_strategy, ada, strategy())
    ref.tell(StrategyErrors({created.id: "rsi(14) needs 15 candles of history"}, 1_700_000_000_000))
    view = ask(U.get_strategy, ada, created.id)
    assert view.last_error == "rsi(14) needs 15 candles of history" and view.last_error_at == iso_from_ms(
        1_700_000_000_000
    )
    ref.tell(StrategyErrors({created.id: None}, 1_700_000_060_000))
    view = ask(U.get_strategy, ada, created.id)
    assert view.last_error is None and view.last_error_at is None


def test_a_once_strategy_that_fired_is_disabled_and_the_scanner_told(link) -> None:
    ask, scanner, next_told, _, ref = link
    ada = sign_up(ask, "ada")
    created = ask(U.create_strategy, ada, strategy(frequency="once"))
    ask(WatchStrategies(scanner))
    ref.tell(DisableStrategy(created.id))
    assert next_told() == UserStrategies(ada, ())
    assert ask(U.get_strategy, ada, created.id).enabled is False
    ref.tell(DisableStrategy(99_999))  # deleted meanwhile: nothing to do, nothing told
    ask(U.get_strategy, ada, created.id)
