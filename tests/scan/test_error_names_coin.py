"""A strategy's runtime error names the coin it is about (issue 12), unless it is about all its coins."""

from __future__ import annotations

import numpy as np

from ubot.scan.worker import naming_coins

SYMBOLS = ["BTC", "ETH", "USDT", "SOL", "HOT", "DOGE", "PEPE"]


def names(error: str | None, scope: list[int], undefined: list[int]) -> str | None:
    mask = np.zeros(len(SYMBOLS), dtype=bool)
    mask[undefined] = True
    return naming_coins(error, SYMBOLS, np.array(scope, dtype=np.int64), mask)


def test_the_coins_an_error_is_about_are_named() -> None:
    assert names("division by zero", [0, 1, 2, 3], [2]) == "division by zero (for USDT)"
    assert names("division by zero", [3], [3]) == "division by zero (for SOL)"  # the only coin
    assert names("price is not available", list(range(7)), [1, 3, 5, 6]) == (
        "price is not available (for ETH, SOL, DOGE and 1 more)"
    )


def test_an_error_about_every_coin_or_none_is_left_as_it_is() -> None:
    assert (
        names("rsi(14) needs 15 candles of history", [0, 1, 2], [0, 1, 2])
        == "rsi(14) needs 15 candles of history"
    )
    assert names(None, [0, 1], []) is None
    assert names("division by zero", [0, 1], [4]) == "division by zero"  # not one of its coins
