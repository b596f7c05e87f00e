"""Strategies with the real condition language (skipped until ``ubot.rules`` exists)."""

from __future__ import annotations

import pytest

from ubot.users import validation
from ubot.users.errors import ValidationError
from ubot.users.manager import UserManager

rules = pytest.importorskip("ubot.rules")

PW = "correct horse 42"


def test_the_default_checker_is_ubot_rules() -> None:
    info = validation.condition("rsi(14) < 30 and percent_change_24h < -10")

    assert "rsi(14)" in info.indicators
    assert "percent_change_24h" in info.fields


def test_a_rejected_condition_becomes_a_condition_error_with_its_column() -> None:
    with pytest.raises(ValidationError) as caught:
        validation.condition("rsi(14) < 30 and eval('1')")

    assert caught.value.field == "condition"
    assert isinstance(caught.value.column, int) and caught.value.column >= 1
    assert caught.value.message


def test_the_checker_raises_the_documented_error() -> None:
    with pytest.raises(rules.ConditionError) as caught:
        rules.analyze("__import__('os')")

    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value.message, str)


def test_a_strategy_stores_the_indicators_the_language_derives(store, clock, passwords) -> None:
    manager = UserManager(store, clock, passwords=passwords)  # analyze: ubot.rules by default
    user = manager.register("alice", "alice@example.com", PW)
    manager.put_settings(user.id, {"email_to": "a@example.com"})

    view = manager.create_strategy(
        user.id,
        {
            "name": "Cross",
            "condition": "ema(9) > ema(21) and rsi(14) < 70",
            "timeframe": "1h",
            "symbols": ["BTC"],
            "channels": ["email"],
        },
    )

    assert set(view.indicators) >= {"ema(9)", "ema(21)", "rsi(14)"}


def test_line_breaks_in_a_condition_are_stored_as_one_space(store, clock, passwords) -> None:
    manager = UserManager(store, clock, passwords=passwords)
    user = manager.register("alice", "alice@example.com", PW)
    manager.put_settings(user.id, {"email_to": "alerts@example.com"})
    written = "rsi(14) < 30\r\nand\n\tpercent_change_24h  >  5 "

    saved = manager.create_strategy(
        user.id,
        {"name": "multi-line", "condition": written, "timeframe": "1h", "top_n": 5, "channels": ["email"]},
    )

    assert saved.condition == "rsi(14) < 30 and percent_change_24h > 5"
    assert manager.get_strategy(user.id, saved.id).condition == saved.condition
    assert manager.specs_of(user.id).specs[0].condition == saved.condition
    # an error still points at the column as written
    with pytest.raises(ValidationError) as caught:
        manager.validate_condition("rsi(14) <\r\n  30 and ?")
    assert caught.value.column == 21


def test_a_strategys_template_reaches_the_scanner_and_names_the_conditions_values(
    store, clock, passwords
) -> None:
    manager = UserManager(store, clock, passwords=passwords)
    user = manager.register("alice", "alice@example.com", PW)
    manager.put_settings(user.id, {"email_to": "alerts@example.com"})
    body = {"name": "dip", "condition": "rsi(14) < 30", "timeframe": "1h", "top_n": 5, "channels": ["email"]}

    saved = manager.create_strategy(user.id, {**body, "template": "{symbol}: RSI {value:rsi( 14 ):.1f}"})

    assert saved.template == "{symbol}: RSI {value:rsi( 14 ):.1f}"
    assert manager.specs_of(user.id).specs[0].template == saved.template
    with pytest.raises(ValidationError) as caught:
        manager.patch_strategy(user.id, saved.id, {"condition": "price < 30"})
    assert (caught.value.field, caught.value.column) == ("template", 22)
    assert "rsi(14) is not in the condition" in caught.value.message
