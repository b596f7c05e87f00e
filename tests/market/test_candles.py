"""Candle maths: UTC buckets, incremental OHLC per coin and timeframe, and the exact rebuild by merge."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ubot.market.candles import NO_CANDLE, TIMEFRAMES, CandleBook, CandleRows, bucket_start, merge
from ubot.timeutil import parse_iso_ms

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
T0 = parse_iso_ms("2024-10-16T00:00:00.000Z")  # a UTC midnight: a boundary of every timeframe


def ms(text: str) -> int:
    return parse_iso_ms(text)


def quote(book: CandleBook, coin: int, ts: int, price: float):
    return book.apply(np.array([coin]), np.array([ts]), np.array([price]))


def candle(book: CandleBook, timeframe: str, coin: int) -> tuple | None:
    """(open_time, open, high, low, close, first_ts, last_ts, count) of the coin's open candle."""
    rows = list(book.open_candles(timeframe, [coin]).rows())
    assert len(rows) <= 1
    return tuple(rows[0][1:]) if rows else None


def all_open(book: CandleBook) -> dict[str, list[tuple]]:
    return {tf: sorted(book.open_candles(tf).rows()) for tf in book.timeframes}


# -- bucket_start ---------------------------------------------------------------------------------


@pytest.mark.parametrize("timeframe", list(TIMEFRAMES))
def test_bucket_start_at_exact_boundaries(timeframe):
    length = TIMEFRAMES[timeframe]
    boundary = T0 + 7 * length
    assert bucket_start(boundary, timeframe) == boundary
    assert bucket_start(boundary - 1, timeframe) == boundary - length
    assert bucket_start(boundary + length - 1, timeframe) == boundary
    assert bucket_start(boundary + length, timeframe) == boundary + length


@pytest.mark.parametrize(
    ("ts", "timeframe", "expected"),
    [
        ("2024-10-16T00:59:59.999Z", "1m", "2024-10-16T00:59:00.000Z"),
        ("2024-10-16T01:00:00.000Z", "1m", "2024-10-16T01:00:00.000Z"),
        ("2024-10-16T00:59:59.999Z", "5m", "2024-10-16T00:55:00.000Z"),
        ("2024-10-16T00:59:59.999Z", "15m", "2024-10-16T00:45:00.000Z"),
        ("2024-10-16T00:59:59.999Z", "1h", "2024-10-16T00:00:00.000Z"),
        ("2024-10-16T01:00:00.000Z", "1h", "2024-10-16T01:00:00.000Z"),
        ("2024-10-16T03:59:59.999Z", "4h", "2024-10-16T00:00:00.000Z"),
        ("2024-10-16T04:00:00.000Z", "4h", "2024-10-16T04:00:00.000Z"),
        ("2024-10-16T23:59:59.999Z", "4h", "2024-10-16T20:00:00.000Z"),
        ("2024-10-16T23:59:59.999Z", "1d", "2024-10-16T00:00:00.000Z"),
        ("2024-10-17T00:00:00.000Z", "1d", "2024-10-17T00:00:00.000Z"),
        # a UTC day, whatever the offset the time was written with
        ("2024-10-17T01:30:00.000+02:00", "1d", "2024-10-16T00:00:00.000Z"),
        ("1969-12-31T23:59:59.999Z", "1d", "1969-12-31T00:00:00.000Z"),
    ],
)
def test_bucket_start_is_utc_aligned(ts, timeframe, expected):
    assert bucket_start(ms(ts), timeframe) == ms(expected)


def test_bucket_start_vectorised():
    stamps = np.array([T0 - 1, T0, T0 + 4 * HOUR - 1, T0 + 4 * HOUR], dtype=np.int64)
    result = bucket_start(stamps, "4h")
    assert result.tolist() == [T0 - 4 * HOUR, T0, T0, T0 + 4 * HOUR]


def test_timeframes_divide_each_other():
    lengths = list(TIMEFRAMES.values())
    assert lengths == sorted(lengths)
    assert all(b % a == 0 for a, b in zip(lengths, lengths[1:]))
    assert DAY % lengths[-1] == 0


# -- CandleBook construction ----------------------------------------------------------------------


def test_book_sorts_timeframes_finest_first():
    book = CandleBook(["1d", "1m", "1h"])
    assert book.timeframes == ("1m", "1h", "1d")
    assert book.finest == "1m"


@pytest.mark.parametrize("timeframes", [["1m", "2h"], [], ["7m"]])
def test_book_rejects_unknown_or_no_timeframes(timeframes):
    with pytest.raises(ValueError, match="known: 1m, 5m, 15m, 1h, 4h, 1d"):
        CandleBook(timeframes)


# -- CandleBook.apply -----------------------------------------------------------------------------


def test_first_quote_opens_a_candle_on_every_timeframe():
    book = CandleBook()
    ts = T0 + 3 * HOUR + 17 * MINUTE + 5_123
    update = quote(book, 1, ts, 100.0)
    assert update.late == 0
    for tf in TIMEFRAMES:
        assert len(update.closed[tf]) == 0
        assert candle(book, tf, 1) == (bucket_start(ts, tf), 100.0, 100.0, 100.0, 100.0, ts, ts, 1)
        assert list(update.open[tf].rows()) == [
            (1, bucket_start(ts, tf), 100.0, 100.0, 100.0, 100.0, ts, ts, 1)
        ]


def test_same_bucket_updates_high_low_close():
    book = CandleBook(["1m", "1h"])
    quote(book, 1, T0 + 1_000, 100.0)
    quote(book, 1, T0 + 2_000, 120.0)
    quote(book, 1, T0 + 3_000, 90.0)
    update = quote(book, 1, T0 + 4_000, 95.0)
    expected = (T0, 100.0, 120.0, 90.0, 95.0, T0 + 1_000, T0 + 4_000, 4)
    assert candle(book, "1m", 1) == expected
    assert candle(book, "1h", 1) == expected
    assert len(update.closed["1m"]) == 0


def test_new_bucket_closes_the_old_candle_with_its_final_values():
    book = CandleBook(["1m", "5m"])
    quote(book, 1, T0 + 10_000, 100.0)
    quote(book, 1, T0 + 20_000, 110.0)
    quote(book, 1, T0 + 59_999, 105.0)
    update = quote(book, 1, T0 + MINUTE, 107.0)  # 00:01:00.000 exactly: the next minute
    assert list(update.closed["1m"].rows()) == [
        (1, T0, 100.0, 110.0, 100.0, 105.0, T0 + 10_000, T0 + 59_999, 3)
    ]
    assert update.closed["1m"].timeframe == "1m"
    assert len(update.closed["5m"]) == 0
    assert candle(book, "1m", 1) == (T0 + MINUTE, 107.0, 107.0, 107.0, 107.0, T0 + MINUTE, T0 + MINUTE, 1)
    assert candle(book, "5m", 1) == (T0, 100.0, 110.0, 100.0, 107.0, T0 + 10_000, T0 + MINUTE, 4)


def test_closing_only_touches_the_coins_that_moved_on():
    book = CandleBook(["1m"])
    book.apply(np.array([1, 2]), np.array([T0 + 1, T0 + 2]), np.array([1.0, 2.0]))
    update = book.apply(np.array([1, 2]), np.array([T0 + MINUTE, T0 + 3]), np.array([1.5, 2.5]))
    assert update.closed["1m"].coin_ids.tolist() == [1]
    assert candle(book, "1m", 2) == (T0, 2.0, 2.5, 2.0, 2.5, T0 + 2, T0 + 3, 2)


def test_higher_timeframes_close_at_their_own_boundaries():
    book = CandleBook()
    quote(book, 1, ms("2024-10-16T03:59:59.999Z"), 1.0)
    update = quote(book, 1, ms("2024-10-16T04:00:00.000Z"), 2.0)
    closed = {tf: rows.open_time.tolist() for tf, rows in update.closed.items()}
    assert closed == {
        "1m": [ms("2024-10-16T03:59:00.000Z")],
        "5m": [ms("2024-10-16T03:55:00.000Z")],
        "15m": [ms("2024-10-16T03:45:00.000Z")],
        "1h": [ms("2024-10-16T03:00:00.000Z")],
        "4h": [ms("2024-10-16T00:00:00.000Z")],
        "1d": [],
    }
    update = quote(book, 1, ms("2024-10-17T00:00:00.000Z"), 3.0)
    assert update.closed["1d"].open_time.tolist() == [T0]
    assert list(update.closed["1d"].rows())[0][2:6] == (1.0, 2.0, 1.0, 2.0)


def test_gaps_create_no_synthetic_candles():
    book = CandleBook(["1m", "1h"])
    quote(book, 1, T0 + 5_000, 100.0)
    update = quote(book, 1, T0 + 10 * MINUTE + 5_000, 200.0)  # nine empty minutes in between
    assert len(update.closed["1m"]) == 1
    assert update.closed["1m"].open_time.tolist() == [T0]
    assert candle(book, "1m", 1)[0] == T0 + 10 * MINUTE
    assert candle(book, "1m", 1)[1] == 200.0  # opens at its own first quote, not the previous close
    update = quote(book, 1, T0 + 3 * HOUR, 300.0)
    assert update.closed["1h"].open_time.tolist() == [T0]
    assert candle(book, "1h", 1)[0] == T0 + 3 * HOUR


def test_out_of_order_quote_in_the_open_bucket_becomes_the_open_not_the_close():
    book = CandleBook(["1m", "1h"])
    quote(book, 1, T0 + 30_000, 100.0)
    quote(book, 1, T0 + 40_000, 110.0)
    update = quote(book, 1, T0 + 10_000, 90.0)  # earlier than anything seen in this minute
    assert update.late == 0
    expected = (T0, 90.0, 110.0, 90.0, 110.0, T0 + 10_000, T0 + 40_000, 3)
    assert candle(book, "1m", 1) == expected
    assert candle(book, "1h", 1) == expected


def test_out_of_order_quote_between_first_and_last_only_moves_high_low():
    book = CandleBook(["1m"])
    quote(book, 1, T0 + 10_000, 100.0)
    quote(book, 1, T0 + 40_000, 110.0)
    quote(book, 1, T0 + 20_000, 150.0)
    assert candle(book, "1m", 1) == (T0, 100.0, 150.0, 100.0, 110.0, T0 + 10_000, T0 + 40_000, 3)


def test_repeated_timestamp_replaces_the_close():
    book = CandleBook(["1m", "5m"])
    quote(book, 1, T0 + 10_000, 100.0)
    quote(book, 1, T0 + 20_000, 110.0)
    quote(book, 1, T0 + 20_000, 105.0)
    expected = (T0, 100.0, 110.0, 100.0, 105.0, T0 + 10_000, T0 + 20_000, 3)
    assert candle(book, "1m", 1) == expected
    assert candle(book, "5m", 1) == expected


def test_repeated_timestamp_of_a_single_quote_keeps_the_open():
    book = CandleBook(["1m"])
    quote(book, 1, T0 + 10_000, 100.0)
    quote(book, 1, T0 + 10_000, 101.0)
    assert candle(book, "1m", 1) == (T0, 100.0, 101.0, 100.0, 101.0, T0 + 10_000, T0 + 10_000, 2)


def test_late_quote_is_counted_and_changes_nothing_on_any_timeframe():
    book = CandleBook()
    quote(book, 1, T0 + 10_000, 100.0)
    quote(book, 1, T0 + MINUTE + 5_000, 110.0)  # the 1m candle of 00:00 is closed now
    before = all_open(book)
    # 00:00:30 is inside the open 5m/1h/... buckets, but older than the open 1m candle: late.
    update = quote(book, 1, T0 + 30_000, 1_000.0)
    assert update.late == 1
    assert all(len(update.closed[tf]) == 0 for tf in TIMEFRAMES)
    assert all(len(update.open[tf]) == 0 for tf in TIMEFRAMES)
    assert all_open(book) == before
    # and a later quote continues as if the late one never came
    update = quote(book, 1, T0 + MINUTE + 6_000, 111.0)
    assert update.late == 0
    assert candle(book, "1h", 1) == (T0, 100.0, 111.0, 100.0, 111.0, T0 + 10_000, T0 + MINUTE + 6_000, 3)


def test_late_counts_only_the_late_coins_of_a_batch():
    book = CandleBook(["1m"])
    book.apply(np.array([1, 2]), np.array([T0 + MINUTE, T0 + MINUTE]), np.array([1.0, 2.0]))
    update = book.apply(np.array([1, 2, 3]), np.array([T0, T0 + MINUTE + 1, T0]), np.array([9.0, 3.0, 4.0]))
    assert update.late == 1
    assert update.open["1m"].coin_ids.tolist() == [2, 3]
    assert candle(book, "1m", 1) == (T0 + MINUTE, 1.0, 1.0, 1.0, 1.0, T0 + MINUTE, T0 + MINUTE, 1)
    assert candle(book, "1m", 3) == (T0, 4.0, 4.0, 4.0, 4.0, T0, T0, 1)  # new coin: never late


def test_nan_price_is_ignored():
    book = CandleBook(["1m", "1h"])
    update = quote(book, 1, T0 + 1_000, math.nan)
    assert update.late == 0
    assert len(update.open["1m"]) == 0
    assert candle(book, "1m", 1) is None  # known coin, still no candle
    quote(book, 1, T0 + 2_000, 100.0)
    quote(book, 1, T0 + 3_000, math.nan)
    update = quote(book, 1, T0 + MINUTE, math.nan)  # would close the minute if it counted
    assert len(update.closed["1m"]) == 0
    assert candle(book, "1m", 1) == (T0, 100.0, 100.0, 100.0, 100.0, T0 + 2_000, T0 + 2_000, 1)
    assert candle(book, "1h", 1) == (T0, 100.0, 100.0, 100.0, 100.0, T0 + 2_000, T0 + 2_000, 1)


def test_new_coins_appear_later():
    book = CandleBook(["1m"])
    book.apply(np.array([1]), np.array([T0]), np.array([1.0]))
    update = book.apply(np.array([2, 1]), np.array([T0 + MINUTE, T0 + MINUTE]), np.array([2.0, 1.5]))
    assert len(book) == 2
    assert update.closed["1m"].coin_ids.tolist() == [1]
    assert update.open["1m"].coin_ids.tolist() == [2, 1]
    assert candle(book, "1m", 2) == (T0 + MINUTE, 2.0, 2.0, 2.0, 2.0, T0 + MINUTE, T0 + MINUTE, 1)
    assert sorted(book.open_candles("1m").coin_ids.tolist()) == [1, 2]


def test_coins_in_any_order_leaving_and_coming_back_keep_their_own_candles():
    """Ranks move (the same coins in another order), coins leave and come back, new ones appear:
    each coin's candles are those of its own quotes, as in a book fed the same quotes in id order."""
    rng = np.random.default_rng(11)
    shuffled, in_order = CandleBook(), CandleBook(capacity=4)
    ts = T0
    for step in range(80):
        ts += int(rng.integers(1, 3 * MINUTE))
        universe = np.arange(1, 60 + 2 * step, dtype=np.int64)  # new coins appear as it goes
        ids = rng.choice(universe, size=int(rng.integers(1, len(universe))), replace=False)
        for _ in range(int(rng.integers(1, 3))):  # sometimes the very same coins again, reordered
            ids = rng.permutation(ids)
            stamps = ts - rng.integers(0, 30_000, len(ids))
            prices = rng.uniform(1, 100, len(ids))
            a = shuffled.apply(ids, stamps, prices)
            order = np.argsort(ids)
            b = in_order.apply(ids[order], stamps[order], prices[order])
            assert a.late == b.late
            for tf in TIMEFRAMES:
                assert sorted(a.closed[tf].rows()) == sorted(b.closed[tf].rows())
                assert sorted(a.open[tf].rows()) == sorted(b.open[tf].rows())
    assert all_open(shuffled) == all_open(in_order)


def test_book_grows_beyond_its_initial_capacity():
    book = CandleBook(["1m", "1h"], capacity=2)
    ids = np.arange(1, 1001, dtype=np.int64)
    prices = ids * 1.5
    book.apply(ids[:3], np.full(3, T0), prices[:3])
    book.apply(ids, np.full(1000, T0 + 1), prices + 1)
    update = book.apply(ids[::-1], np.full(1000, T0 + MINUTE), prices[::-1])
    assert len(book) == 1000
    closed = {row[0]: row for row in update.closed["1m"].rows()}
    assert len(closed) == 1000
    assert closed[1] == (1, T0, 1.5, 2.5, 1.5, 2.5, T0, T0 + 1, 2)
    assert closed[1000] == (1000, T0, 1501.0, 1501.0, 1501.0, 1501.0, T0 + 1, T0 + 1, 1)
    hour = {row[0]: row for row in book.open_candles("1h").rows()}
    assert hour[500] == (500, T0, 751.0, 751.0, 750.0, 750.0, T0 + 1, T0 + MINUTE, 2)
    assert hour[2] == (2, T0, 3.0, 4.0, 3.0, 3.0, T0, T0 + MINUTE, 3)


def test_open_candles_of_given_coins_skips_unknown_and_candle_less_coins():
    book = CandleBook(["1m"])
    book.apply(np.array([1, 2]), np.array([T0, T0]), np.array([1.0, math.nan]))
    assert book.open_candles("1m", [2, 1, 99]).coin_ids.tolist() == [1]
    assert book.open_candles("1m").coin_ids.tolist() == [1]
    assert len(CandleBook(["1m"]).open_candles("1m")) == 0


def test_open_candle_rows_are_copies():
    book = CandleBook(["1m"])
    update = quote(book, 1, T0, 1.0)
    quote(book, 1, T0 + 1, 5.0)
    assert update.open["1m"].close.tolist() == [1.0]


# -- restore --------------------------------------------------------------------------------------


def test_restored_book_continues_identically():
    rng = np.random.default_rng(7)
    original = CandleBook()
    ids = np.arange(1, 41, dtype=np.int64)
    ts = T0 + 3 * HOUR + 50 * MINUTE
    for _ in range(30):
        ts += int(rng.integers(1, 4 * MINUTE))
        original.apply(ids, ts - rng.integers(0, 30_000, len(ids)), rng.uniform(1, 100, len(ids)))

    restored = CandleBook(capacity=4)
    for tf in original.timeframes:
        restored.restore(original.open_candles(tf))
    assert all_open(restored) == all_open(original)

    for _ in range(40):
        ts += int(rng.integers(1, 20 * MINUTE))
        stamps = ts - rng.integers(0, 90_000, len(ids))  # some late ones too
        prices = rng.uniform(1, 100, len(ids))
        prices[rng.integers(0, len(ids))] = math.nan
        a = original.apply(ids, stamps, prices)
        b = restored.apply(ids, stamps, prices)
        assert a.late == b.late
        for tf in TIMEFRAMES:
            assert sorted(a.closed[tf].rows()) == sorted(b.closed[tf].rows())
            assert sorted(a.open[tf].rows()) == sorted(b.open[tf].rows())
    assert all_open(restored) == all_open(original)


def test_restore_replaces_what_the_book_held():
    book = CandleBook(["1m"])
    quote(book, 1, T0 + MINUTE, 5.0)
    book.restore(CandleRows.from_rows("1m", [(1, T0, 1.0, 2.0, 0.5, 1.5, T0 + 1, T0 + 9, 4)]))
    assert candle(book, "1m", 1) == (T0, 1.0, 2.0, 0.5, 1.5, T0 + 1, T0 + 9, 4)


# -- CandleRows -----------------------------------------------------------------------------------


def test_candle_rows_round_trip_and_take():
    rows = [(1, T0, 1.0, 2.0, 0.5, 1.5, T0 + 1, T0 + 9, 4), (2, T0, 3.0, 3.0, 3.0, 3.0, T0, T0, 1)]
    candles = CandleRows.from_rows("5m", rows)
    assert list(candles.rows()) == rows
    assert candles.coin_ids.dtype == np.int64 and candles.count.dtype == np.int64
    assert candles.open.dtype == np.float64
    assert list(candles.take(candles.coin_ids == 2).rows()) == rows[1:]
    empty = CandleRows.from_rows("5m", [])
    assert len(empty) == 0 and list(empty.rows()) == []


# -- merge ----------------------------------------------------------------------------------------


def test_merge_of_minutes_into_an_hour():
    parts = CandleRows.from_rows(
        "1m",
        [
            (1, T0 + 2 * MINUTE, 3.0, 9.0, 2.0, 4.0, T0 + 2 * MINUTE, T0 + 2 * MINUTE + 5, 2),
            (1, T0, 5.0, 6.0, 1.0, 2.0, T0 + 7, T0 + 50_000, 3),
            (2, T0 + HOUR, 7.0, 7.0, 7.0, 7.0, T0 + HOUR, T0 + HOUR, 1),
            (1, T0 + HOUR + MINUTE, 8.0, 8.0, 8.0, 8.0, T0 + HOUR + MINUTE, T0 + HOUR + MINUTE, 1),
        ],
    )
    merged = merge("1h", parts)
    assert merged.timeframe == "1h"
    assert list(merged.rows()) == [
        (1, T0, 5.0, 9.0, 1.0, 4.0, T0 + 7, T0 + 2 * MINUTE + 5, 5),
        (1, T0 + HOUR, 8.0, 8.0, 8.0, 8.0, T0 + HOUR + MINUTE, T0 + HOUR + MINUTE, 1),
        (2, T0 + HOUR, 7.0, 7.0, 7.0, 7.0, T0 + HOUR, T0 + HOUR, 1),
    ]
    assert len(merge("1h", CandleRows.from_rows("1m", []))) == 0


# A stream of quotes: (coin, offset from T0 in ms, price). Offsets are drawn from a few hours around
# boundaries, and a quote may repeat an earlier timestamp or step back in time (out of order, late).
_coins = st.integers(1, 4)
_prices = st.one_of(st.floats(0.01, 1_000.0), st.just(math.nan))


@st.composite
def _streams(draw):
    quotes = []
    clock = draw(st.integers(0, 5 * HOUR))
    for _ in range(draw(st.integers(1, 80))):
        step = draw(
            st.one_of(
                st.integers(0, 90_000),  # small steps, same or next minute
                st.integers(0, 5 * HOUR),  # big jumps across higher boundaries
                st.integers(-10 * MINUTE, 0),  # backwards: out of order or late
            )
        )
        clock = max(0, clock + step)
        coin = draw(_coins)
        if quotes and draw(st.booleans()) and draw(st.booleans()):
            clock = draw(st.sampled_from([q[1] for q in quotes]))  # repeat a timestamp
        quotes.append((coin, clock, draw(_prices)))
    return quotes


@settings(max_examples=100, deadline=None)
@given(_streams())
def test_higher_timeframes_are_exactly_the_merge_of_the_finest(stream):
    book = CandleBook()
    finest = book.finest
    closed_finest: list[tuple] = []
    for coin, offset, price in stream:
        update = quote(book, coin, T0 + offset, price)
        closed_finest.extend(update.closed[finest].rows())
        open_finest = book.open_candles(finest)
        for tf in book.timeframes[1:]:
            direct = sorted(book.open_candles(tf).rows())
            length = TIMEFRAMES[tf]
            buckets = {row[0]: row[1] - row[1] % length for row in open_finest.rows()}
            parts = [row for row in closed_finest if buckets.get(row[0]) == row[1] - row[1] % length]
            rebuilt = merge(tf, CandleRows.from_rows(finest, [*parts, *open_finest.rows()]))
            assert direct == list(rebuilt.rows()), tf


@settings(max_examples=60, deadline=None)
@given(_streams())
def test_open_time_never_goes_backwards_and_closed_candles_are_final(stream):
    book = CandleBook(["1m", "15m"])
    closed: dict[tuple[str, int], list[int]] = {}
    for coin, offset, price in stream:
        update = quote(book, coin, T0 + offset, price)
        for tf, rows in update.closed.items():
            for row in rows.rows():
                times = closed.setdefault((tf, row[0]), [])
                assert not times or row[1] > times[-1]  # each bucket closes once, in order
                times.append(row[1])
                current = candle(book, tf, row[0])
                assert current is not None and current[0] > row[1]
                assert NO_CANDLE < row[1] <= row[6] <= row[7] < row[1] + TIMEFRAMES[tf]


def test_candle_of_gives_a_coins_open_candle_or_none():
    book = CandleBook(["1m"])
    book.apply(np.array([7, 3, 5]), np.array([T0, T0, T0]), np.array([1.5, 2.5, math.nan]))
    book.apply(np.array([3]), np.array([T0 + 1_000]), np.array([4.0]))
    rows = book.open_candles("1m")

    assert rows.candle_of(3) == (T0, 2.5, 4.0, 2.5, 4.0)
    assert rows.candle_of(7) == (T0, 1.5, 1.5, 1.5, 1.5)
    assert rows.candle_of(5) is None  # no price yet: no candle
    assert rows.candle_of(99) is None
