"""The planned strategies' costs with their sum and the costliest kept as strategies come and go
(ubot/scan/cost.py CostBook): /health reads them every tick."""

from __future__ import annotations

from ubot.scan.cost import Cost, CostBook


def test_the_total_follows_every_change() -> None:
    book = CostBook()
    book.set(1, Cost(series=1, coins=100))  # 200
    book.set(2, Cost(series=3, coins=10))  # 40
    assert book.total == 240
    book.set(1, Cost(series=0, coins=100))  # replaced: 100
    assert book.total == 140
    book.drop(2)
    book.drop(99)  # not there: nothing
    assert book.total == 100
    assert dict(book) == {1: Cost(series=0, coins=100)}
    assert book == {1: Cost(series=0, coins=100)}


def test_the_costliest_first_lower_id_first_among_equals_and_fresh_after_each_change() -> None:
    book = CostBook()
    for strategy_id, coins in [(5, 10), (3, 30), (4, 30), (1, 20)]:
        book.set(strategy_id, Cost(series=0, coins=coins))
    assert [i for i, _ in book.costliest(3)] == [3, 4, 1]
    assert [i for i, _ in book.costliest(2)] == [3, 4]
    book.drop(3)
    assert [i for i, _ in book.costliest(3)] == [4, 1, 5]
    book.set(5, Cost(series=9, coins=10))  # now 100
    assert [i for i, _ in book.costliest(5)] == [5, 4, 1]
    assert CostBook().costliest(5) == []
