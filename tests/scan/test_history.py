import numpy as np

from tests.scan.support import MINUTE, T0, candles
from ubot.scan.history import CloseHistory


def test_closed_candles_append_per_coin_oldest_first():
    history = CloseHistory("1m", depth=3)
    history.add_closed(candles("1m", [(1, T0, 10.0), (2, T0, 20.0)]))
    history.add_closed(candles("1m", [(1, T0 + MINUTE, 11.0)]))
    rows = history.rows_for(np.array([1, 2, 99]))
    assert rows[2] == -1
    closes = history.closes(rows, 3, closed_only=True)
    assert np.isnan(closes[0, 0]) and closes[0, 1:].tolist() == [10.0, 11.0]
    assert np.isnan(closes[1, :2]).all() and closes[1, 2] == 20.0
    assert np.isnan(closes[2]).all()


def test_old_and_repeated_candles_are_ignored_so_loads_may_overlap():
    history = CloseHistory("1m", depth=4)
    assert history.add_closed(candles("1m", [(1, T0, 1.0), (1, T0 + MINUTE, 2.0)])) == 2
    assert (
        history.add_closed(candles("1m", [(1, T0 + MINUTE, 2.0), (1, T0, 1.0), (1, T0 + 2 * MINUTE, 3.0)]))
        == 1
    )
    closes = history.closes(history.rows_for(np.array([1])), 4, closed_only=True)
    assert closes[0, 1:].tolist() == [1.0, 2.0, 3.0]


def test_several_candles_of_one_coin_in_one_update_keep_their_order():
    history = CloseHistory("1m", depth=3)
    history.add_closed(candles("1m", [(5, T0 + 2 * MINUTE, 3.0), (5, T0, 1.0), (5, T0 + MINUTE, 2.0)]))
    assert history.closes(history.rows_for(np.array([5])), 3, closed_only=True)[0].tolist() == [1.0, 2.0, 3.0]


def test_depth_keeps_the_newest():
    history = CloseHistory("1m", depth=2)
    for k in range(5):
        history.add_closed(candles("1m", [(1, T0 + k * MINUTE, float(k))]))
    assert history.closes(history.rows_for(np.array([1])), 2, closed_only=True)[0].tolist() == [3.0, 4.0]


def test_open_candle_ends_the_intrabar_view():
    history = CloseHistory("1m", depth=3)
    history.add_closed(candles("1m", [(1, T0, 1.0), (1, T0 + MINUTE, 2.0)]))
    history.set_open(candles("1m", [(1, T0 + 2 * MINUTE, 2.5)]))
    rows = history.rows_for(np.array([1]))
    assert history.closes(rows, 3, closed_only=False)[0].tolist() == [1.0, 2.0, 2.5]
    assert history.closes(rows, 2, closed_only=True)[0].tolist() == [1.0, 2.0]
    assert history.closes(rows, 1, closed_only=False)[0].tolist() == [2.5]


def test_grows_past_its_capacity():
    history = CloseHistory("1m", depth=2, capacity=2)
    history.add_closed(candles("1m", [(i, T0, float(i)) for i in range(1, 11)]))
    closes = history.closes(history.rows_for(np.arange(1, 11)), 1, closed_only=True)
    assert closes[:, 0].tolist() == [float(i) for i in range(1, 11)]


def test_a_first_load_keeps_each_coins_newest_candles():
    history = CloseHistory("1m", depth=2)
    rows = [(1, T0 + k * MINUTE, float(k)) for k in range(5)] + [(2, T0, 7.0)]
    assert history.add_closed(candles("1m", rows[::-1])) == 3
    closes = history.closes(history.rows_for(np.array([1, 2])), 2, closed_only=True)
    assert closes[0].tolist() == [3.0, 4.0] and np.isnan(closes[1, 0]) and closes[1, 1] == 7.0
    assert history.add_closed(candles("1m", [(1, T0 + 4 * MINUTE, 9.0), (1, T0 + 5 * MINUTE, 5.0)])) == 1
    assert history.closes(history.rows_for(np.array([1])), 2, closed_only=True)[0].tolist() == [4.0, 5.0]
