"""Scan budgets (issue 12): a strategy's cost, computed when it is saved, counted against the owner's
budget and the server's (``[scanner] user_budget``, ``server_budget``; ``ubot/scan/cost.py``).

The attack of the issue: one account with 50 strategies like ``rsi(a) < 0 or rsi(b) < 0 or ...``,
10 distinct periods each, on the top 1,000 coins, made every scan take seconds. It is refused at
its budget, with the real condition checker."""

from __future__ import annotations

import pytest

from tests.support.pglocks import second_waits
from tests.support.users import attack_strategy
from ubot.config import ConfigError, load_settings
from ubot.models.db import is_sqlite
from ubot.scan.cost import USER_BUDGET, Budgets, call_of, cost_of, series
from ubot.users.errors import OverBudget
from ubot.users.manager import UserManager
from ubot.users.market import KnownMarket

PW = "correct horse 42"
MARKET = KnownMarket(frozenset(f"C{i}" for i in range(1, 1001)), 1000)


def manager_of(store, clock, passwords, budgets: Budgets | None = None) -> UserManager:
    return UserManager(store, clock, passwords=passwords, market=lambda: MARKET, budgets=budgets)


def user(manager: UserManager, name: str) -> int:
    return manager.register(name, f"{name}@example.com", PW).id


def test_the_attack_is_refused_at_the_users_budget(store, clock, passwords) -> None:
    manager = manager_of(store, clock, passwords)
    mallory = user(manager, "mallory")
    accepted, refused = [], []
    for k in range(50):
        try:
            accepted.append(manager.create_strategy(mallory, attack_strategy(k)))
        except OverBudget as error:
            refused.append(error)
    assert [view.cost for view in accepted] == [11_000] * 9  # 1,000 coins x (1 + 10 series)
    assert len(refused) == 41
    error = refused[0]
    assert error.budget == "user_budget" and error.cost == 11_000 and error.field == "condition"
    assert error.description == (
        "this strategy costs 11,000 (10 indicator series + 1, x 1,000 coins) series-coins of scan work "
        "a tick; your other enabled strategies use 99,000 of the budget of 100,000 ([scanner] "
        "user_budget), so 1,000 are left: scan fewer coins (top_n or symbols), use fewer distinct "
        "indicators, or disable another strategy"
    )
    enabled = sum(view.cost for view in manager.list_strategies(mallory) if view.enabled)
    assert enabled <= USER_BUDGET
    # everyone else still gets their strategies
    alice = user(manager, "alice")
    assert manager.create_strategy(alice, attack_strategy(0)).cost == 11_000


def test_the_servers_budget_counts_everyones_enabled_strategies(store, clock, passwords) -> None:
    manager = manager_of(store, clock, passwords, Budgets(user=30_000, server=40_000))
    alice, bob, carol = user(manager, "alice"), user(manager, "bob"), user(manager, "carol")
    for uid, k in ((alice, 0), (alice, 1), (bob, 2)):
        manager.create_strategy(uid, attack_strategy(k))  # 33,000 in all
    manager.create_strategy(carol, attack_strategy(5) | {"top_n": 100})  # 1,100: 34,100
    with pytest.raises(OverBudget) as refused:  # carol's own 12,100 is within her 30,000
        manager.create_strategy(carol, attack_strategy(6))
    assert refused.value.budget == "server_budget"
    assert (
        "the server's other enabled strategies use 34,100 of the budget of 40,000 ([scanner] server_budget)"
        in (refused.value.description)
    )


def test_checked_on_update_enable_and_a_wider_scope(store, clock, passwords) -> None:
    manager = manager_of(store, clock, passwords, Budgets(user=12_000, server=100_000))
    uid = user(manager, "alice")
    first = manager.create_strategy(uid, attack_strategy(0))  # 11,000
    paused = manager.create_strategy(uid, attack_strategy(1) | {"enabled": False})  # disabled: costs nothing
    assert paused.cost == 11_000
    with pytest.raises(OverBudget):  # enable
        manager.patch_strategy(uid, paused.id, {"enabled": True})
    small = manager.create_strategy(uid, attack_strategy(2) | {"condition": "rsi(14) < 30", "top_n": 250})
    assert small.cost == 500  # 11,500 in all
    with pytest.raises(OverBudget) as wider:  # the scope widened by PATCH
        manager.patch_strategy(uid, small.id, {"top_n": 600})
    assert wider.value.field == "condition" and wider.value.cost == 1_200
    assert manager.patch_strategy(uid, small.id, {"top_n": 500}).cost == 1_000  # 12,000: at the budget
    with pytest.raises(OverBudget):  # the scope widened by PUT
        manager.update_strategy(uid, small.id, attack_strategy(2) | {"top_n": 1000})
    with pytest.raises(OverBudget):  # more indicators on the same coins
        manager.patch_strategy(uid, small.id, {"condition": "rsi(14) < 30 or ema(9) > price"})
    # what does not cost more passes, even above a budget lowered since: rename, narrow, disable
    manager.budgets = Budgets(user=5_000, server=100_000)
    assert manager.patch_strategy(uid, first.id, {"name": "renamed"}).name == "renamed"
    assert manager.patch_strategy(uid, first.id, {"top_n": 300}).cost == 3_300
    assert manager.patch_strategy(uid, small.id, {"enabled": False}).enabled is False


def test_no_indicator_costs_its_coins(store, clock, passwords) -> None:
    manager = manager_of(store, clock, passwords, Budgets(user=60, server=100))
    uid = user(manager, "alice")
    view = manager.create_strategy(
        uid,
        {"name": "pump", "condition": "percent_change_1h > 10", "timeframe": "1h", "symbols": ["C1", "C2"]},
    )
    assert view.cost == 2
    with pytest.raises(OverBudget) as refused:
        manager.create_strategy(
            uid, {"name": "wide", "condition": "percent_change_1h > 10", "timeframe": "1h", "top_n": 60}
        )
    assert refused.value.field == "top_n" and refused.value.cost == 60


def test_series_that_share_a_state_count_once() -> None:
    calls = [
        "sma(20)",
        "bb_upper(20, 2)",
        "bb_lower(20, 2.5)",
        "macd()",
        "macd_signal()",
        "rsi(14)",
        "rsi(15)",
    ]
    assert series(calls) == 4  # the 20-candle band, MACD, two RSIs
    assert call_of("bb_upper(20, 2.5)").args == (20, 2.5)
    cost = cost_of(calls, ("BTC", "ETH", "SOL"), None)
    assert (cost.series, cost.coins, cost.total) == (4, 3, 15)
    assert cost_of([], None, 1000).total == 1000
    with pytest.raises(ValueError):
        call_of("rsi")


def test_the_budgets_are_validated_naming_the_option() -> None:
    assert load_settings(environ={}).scanner.user_budget == USER_BUDGET
    with pytest.raises(ConfigError, match=r"\[scanner\] user_budget; expected an integer 1..1000000000"):
        load_settings(environ={"UBOT_SCANNER_USER_BUDGET": "0"})
    with pytest.raises(ConfigError, match=r"server_budget \(5000\) must be at least \[scanner\] user_budget"):
        load_settings(environ={"UBOT_SCANNER_SERVER_BUDGET": "5000"})


def test_two_gateways_saving_at_once_cannot_both_spend_the_servers_last_budget(
    db, store, clock, passwords
) -> None:
    """On PostgreSQL every gateway process has a UserManager of its own: each reads what the enabled
    strategies cost, then writes. Here "gateway A" (this thread) is between its read and its write
    when "gateway B" (another thread, its own connection) saves a strategy: B waits for A's turn to
    end, then counts what A wrote and is refused. Without the turn, both fit alone and both would be
    saved, 22,000 against a server budget of 15,000."""
    if is_sqlite(db):
        pytest.skip("SQLite runs one UserManager, whose mailbox already makes saves take turns")
    manager = manager_of(store, clock, passwords, Budgets(user=15_000, server=15_000))
    alice, bob = user(manager, "alice"), user(manager, "bob")

    refused = second_waits(
        db,
        store.budget_turn(),  # gateway A's turn
        lambda: manager.create_strategy(alice, attack_strategy(0)),  # 11,000: the turn is re-entrant
        lambda: manager.create_strategy(bob, attack_strategy(1)),  # gateway B
    )

    assert isinstance(refused, OverBudget) and refused.budget == "server_budget"
    assert "the server's other enabled strategies use 11,000 of the budget of 15,000" in refused.description
