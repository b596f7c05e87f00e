"""Failed-login back-off: pure functions of the failure record and the time (epoch ms)."""

from __future__ import annotations

from ubot.clocks import FakeClock
from ubot.users.throttle import (
    ACCOUNT_POLICY,
    ADDRESS_POLICY,
    Failures,
    Policy,
    ThrottleBook,
    after_failure,
    retry_after,
)

T = 1_700_000_000_000
MIN = 60_000


def fail_times(times: list[int], policy: Policy = ACCOUNT_POLICY) -> Failures:
    record = Failures()
    for at in times:
        record = after_failure(record, at, policy)
    return record


def test_the_policies_chosen() -> None:
    assert (ACCOUNT_POLICY.threshold, ACCOUNT_POLICY.window_ms) == (5, 15 * MIN)
    assert (ACCOUNT_POLICY.base_delay_ms, ACCOUNT_POLICY.max_delay_ms) == (30_000, 15 * MIN)
    assert ADDRESS_POLICY.threshold == 20


def test_four_failures_lock_nothing() -> None:
    record = fail_times([T, T + 1000, T + 2000, T + 3000])

    assert record == Failures(4, T + 3000, None)
    assert retry_after(record, T + 3000) == 0


def test_the_fifth_failure_within_the_window_locks_for_30_s() -> None:
    record = fail_times([T + i * 1000 for i in range(5)])

    assert record.locked_until == T + 4000 + 30_000
    assert retry_after(record, T + 4000) == 30
    assert retry_after(record, T + 4000 + 29_001) == 1  # rounded up
    assert retry_after(record, T + 4000 + 30_000) == 0


def test_each_further_failure_doubles_the_lock_up_to_15_minutes() -> None:
    record = fail_times([T] * 4)
    delays = []
    now = T
    for _ in range(8):
        record = after_failure(record, now, ACCOUNT_POLICY)
        delays.append(retry_after(record, now))
        now = record.locked_until  # the next attempt as soon as it is allowed

    assert delays == [30, 60, 120, 240, 480, 900, 900, 900]


def test_the_count_starts_over_after_a_quiet_window() -> None:
    record = fail_times([T, T + 1, T + 2, T + 3])

    assert after_failure(record, T + 3 + 15 * MIN - 1, ACCOUNT_POLICY).count == 5
    assert after_failure(record, T + 3 + 15 * MIN, ACCOUNT_POLICY) == Failures(1, T + 3 + 15 * MIN, None)


def test_the_quiet_window_is_counted_from_the_end_of_the_lock() -> None:
    record = fail_times([T] * 10)  # locked for 15 min from T
    assert record.locked_until == T + 15 * MIN

    just_after_lock = after_failure(record, T + 15 * MIN, ACCOUNT_POLICY)
    after_quiet = after_failure(record, T + 30 * MIN, ACCOUNT_POLICY)

    assert just_after_lock.count == 11 and retry_after(just_after_lock, T + 15 * MIN) == 900
    assert after_quiet.count == 1 and after_quiet.locked_until is None


def test_a_book_throttles_each_key_on_its_own_with_a_fake_clock() -> None:
    clock = FakeClock(T / 1000)
    book = ThrottleBook(Policy(threshold=3))

    def now() -> int:
        return int(clock.now() * 1000)

    assert [book.failed("10.0.0.1", now()) for _ in range(3)] == [0, 0, 30]
    assert book.retry_after("10.0.0.1", now()) == 30
    assert book.retry_after("10.0.0.2", now()) == 0

    clock.advance(29.5)
    assert book.retry_after("10.0.0.1", now()) == 1
    clock.advance(0.5)
    assert book.retry_after("10.0.0.1", now()) == 0
    assert book.failed("10.0.0.1", now()) == 60

    book.forget("10.0.0.1")
    assert book.retry_after("10.0.0.1", now()) == 0


def test_a_book_is_bounded_and_drops_stale_records_first() -> None:
    book = ThrottleBook(Policy(threshold=2), max_entries=10)
    book.failed("old0", T)
    book.failed("old1", T)
    book.failed("busy", T + 20 * MIN)
    book.failed("busy", T + 20 * MIN)  # locked
    for i in range(8):
        book.failed(f"new{i}", T + 20 * MIN)  # the 11th record: a sweep

    assert len(book) == 9
    assert book.retry_after("busy", T + 20 * MIN) == 30  # recent and locked: kept
    assert "old0" not in book._records and "old1" not in book._records


def test_a_full_book_drops_the_oldest_records() -> None:
    book = ThrottleBook(Policy(threshold=2), max_entries=10)
    for i in range(11):
        book.failed(f"k{i}", T + i)

    assert len(book) == 9
    assert "k0" not in book._records and "k1" not in book._records and "k10" in book._records
