"""One set of tests for every :class:`~ubot.bus.base.Bus` implementation (see ``conftest.py``)."""

from __future__ import annotations

import threading
import time

import msgspec
import pytest

from tests.bus.conftest import MakeBus
from tests.support.waits import wait_until
from ubot.bus import (
    EVENTS,
    SNAPSHOT,
    TICKS,
    ZERO,
    Batch,
    Bus,
    BusClosed,
    BusUnavailable,
    EntryId,
    SnapshotDocument,
    StrategiesChanged,
    StreamEvent,
    TickReady,
)
from ubot.bus.relay import Relay
from ubot.clocks import FakeClock

BOUND_S = 30.0  # a bound on every wait: reached only by a failing test


def tick(number: int) -> TickReady:
    return TickReady(
        number, snapshot_id=100 + number, snapshot_ms=number * 60_000, scheduled_ms=1, fired_ms=2
    )


class Collector(threading.Thread):
    """Reads ``topic`` after ``after`` until it has ``want`` messages (or the bound passes)."""

    def __init__(self, bus: Bus, topic: str, after: EntryId, want: int) -> None:
        super().__init__(daemon=True)
        self.subscription = bus.subscribe(topic, after)
        self.want = want
        self.entries: list = []
        self.missed = False

    def run(self) -> None:
        deadline = time.monotonic() + BOUND_S
        while len(self.entries) < self.want and time.monotonic() < deadline:
            try:
                batch = self.subscription.next(timeout=BOUND_S)
            except BusClosed:
                return
            except BusUnavailable:  # as a role does: read again, the cursor stayed
                continue
            self.entries.extend(batch.entries)
            self.missed |= batch.missed
            if batch.closed:
                return


def test_published_messages_are_read_back_in_order_with_increasing_ids(bus: Bus) -> None:
    sent = [
        tick(1),
        StreamEvent("snapshot", '{"coins":3}'),
        StreamEvent("alert", '{"id":7}', user_id=42),
        StrategiesChanged(user_id=42),
    ]
    ids = [bus.publish(EVENTS, message) for message in sent]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert bus.last_id(EVENTS) == ids[-1]
    batch = bus.read(EVENTS, ZERO, timeout=0)
    assert [e.message for e in batch.entries] == sent
    assert [e.id for e in batch.entries] == ids
    assert batch.cursor == ids[-1] and not batch.missed and not batch.closed


def test_topics_are_separate_and_an_empty_topic_reads_nothing(bus: Bus) -> None:
    bus.publish(TICKS, tick(1))
    assert bus.last_id(EVENTS) == ZERO
    batch = bus.read(EVENTS, ZERO, timeout=0)
    assert batch.entries == () and batch.cursor == ZERO and not batch.missed


def test_every_reader_reads_every_message(bus: Bus) -> None:
    start = bus.last_id(TICKS)
    readers = [Collector(bus, TICKS, start, want=20) for _ in range(3)]
    for reader in readers:
        reader.start()
    sent = [bus.publish(TICKS, tick(n)) for n in range(1, 21)]
    for reader in readers:
        reader.join(BOUND_S)
        assert [e.id for e in reader.entries] == sent
        assert [e.message.number for e in reader.entries] == list(range(1, 21))
        assert not reader.missed


def test_a_reader_resumes_after_any_id_it_was_given(bus: Bus) -> None:
    ids = [bus.publish(TICKS, tick(n)) for n in range(1, 6)]
    batch = bus.read(TICKS, ids[1], timeout=0)
    assert [e.message.number for e in batch.entries] == [3, 4, 5]
    assert not batch.missed
    assert bus.read(TICKS, ids[-1], timeout=0).entries == ()
    # ``count`` bounds a batch; the cursor goes on from there
    first = bus.read(TICKS, ZERO, timeout=0, count=2)
    second = bus.read(TICKS, first.cursor, timeout=0, count=2)
    assert [e.message.number for e in first.entries + second.entries] == [1, 2, 3, 4]


def test_a_subscription_without_an_id_reads_only_what_comes_next(bus: Bus) -> None:
    bus.publish(TICKS, tick(1))
    subscription = bus.subscribe(TICKS)
    assert subscription.next(timeout=0).entries == ()
    bus.publish(TICKS, tick(2))
    assert [e.message.number for e in subscription.next(timeout=BOUND_S).entries] == [2]
    assert subscription.next(timeout=0).entries == ()


def test_a_blocked_read_wakes_when_a_message_is_published(bus: Bus) -> None:
    start = bus.last_id(TICKS)
    reader = Collector(bus, TICKS, start, want=1)  # one read, bounded by BOUND_S
    reader.start()
    sent = bus.publish(TICKS, tick(1))
    reader.join(BOUND_S)
    assert not reader.is_alive()
    assert [e.id for e in reader.entries] == [sent]


def test_maxlen_keeps_the_newest_entries_and_a_reader_behind_them_has_missed_some(make_bus: MakeBus) -> None:
    # Redis trims with ``MAXLEN ~`` by whole nodes of 100 entries: at least ``maxlen`` are kept.
    bus = make_bus(maxlen=10)
    ids = [bus.publish(TICKS, tick(n)) for n in range(1, 301)]
    kept = bus.read(TICKS, ZERO, timeout=0, count=1000)
    assert kept.missed  # the oldest were trimmed
    numbers = [e.message.number for e in kept.entries]
    assert 10 <= len(numbers) <= 200
    assert numbers == list(range(301 - len(numbers), 301))  # the newest, in order
    behind = bus.read(TICKS, ids[0], timeout=0, count=1000)
    assert behind.missed and behind.entries == kept.entries
    recent = bus.read(TICKS, ids[-11], timeout=0)
    assert not recent.missed
    assert [e.message.number for e in recent.entries] == list(range(291, 301))


def test_maxlen_per_topic(make_bus: MakeBus) -> None:
    bus = make_bus(maxlen=1000, maxlens={EVENTS: 5})
    for n in range(1, 301):
        bus.publish(EVENTS, tick(n))
        bus.publish(TICKS, tick(n))
    assert bus.read(EVENTS, ZERO, timeout=0, count=1000).missed
    ticks = bus.read(TICKS, ZERO, timeout=0, count=1000)
    assert not ticks.missed and len(ticks.entries) == 300


def test_an_id_from_before_the_log_or_beyond_it_reads_as_missed(bus: Bus) -> None:
    first = bus.publish(TICKS, tick(1))
    old = bus.read(TICKS, EntryId(first.ms - 60_000, 0), timeout=0)  # an earlier run's id
    assert old.missed and [e.id for e in old.entries] == [first]
    just_before = bus.read(TICKS, first.predecessor(), timeout=0)
    assert not just_before.missed and [e.id for e in just_before.entries] == [first]
    future = bus.read(TICKS, EntryId(first.ms + 60_000, 0), timeout=BOUND_S)  # answered at once
    assert future.missed and future.entries == () and future.cursor == first
    assert not bus.read(TICKS, future.cursor, timeout=0).missed


def test_latest_value(bus: Bus) -> None:
    assert bus.get_latest(SNAPSHOT) is None
    first = SnapshotDocument(etag='"1-a"', body=b'{"data":[]}', snapshot_id=1, snapshot_ms=60_000)
    bus.set_latest(SNAPSHOT, first)
    assert bus.get_latest(SNAPSHOT) == first
    second = SnapshotDocument(
        etag='"2-b"', body=b"\x00\xff binary is fine", snapshot_id=2, snapshot_ms=120_000
    )
    bus.set_latest(SNAPSHOT, second)
    assert bus.get_latest(SNAPSHOT) == second


def test_members_live_until_their_ttl_passes(bus: Bus, clock: FakeClock) -> None:
    assert bus.members("scanners") == ()
    bus.heartbeat("scanners", "scanner-b", ttl_s=30)
    bus.heartbeat("scanners", "scanner-a", ttl_s=10)
    bus.heartbeat("notifiers", "notifier-a", ttl_s=10)
    assert bus.members("scanners") == ("scanner-a", "scanner-b")  # sorted, whatever the order of arrival
    clock.advance(9.9)
    assert bus.members("scanners") == ("scanner-a", "scanner-b")
    clock.advance(0.2)
    assert bus.members("scanners") == ("scanner-b",)
    assert bus.members("notifiers") == ()
    bus.heartbeat("scanners", "scanner-a", ttl_s=10)  # back
    assert bus.members("scanners") == ("scanner-a", "scanner-b")
    bus.leave("scanners", "scanner-b")
    assert bus.members("scanners") == ("scanner-a",)
    clock.advance(60)
    assert bus.members("scanners") == ()


def test_an_entry_that_cannot_be_decoded_is_logged_and_skipped(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    class FromANewerPeer(msgspec.Struct, tag="from-the-future", tag_field="type"):
        value: int

    before = bus.publish(TICKS, tick(1))
    junk = bus.append(TICKS, b"\xc1 not msgpack")
    unknown = bus.append(TICKS, msgspec.msgpack.encode(FromANewerPeer(3)))
    wrong_field = bus.append(TICKS, msgspec.msgpack.encode({"type": "tick", "number": "one"}))
    after = bus.publish(TICKS, tick(2))
    batch = bus.read(TICKS, before, timeout=0)
    assert [e.id for e in batch.entries] == [after]
    assert batch.cursor == after
    skipped = [r.getMessage() for r in caplog.records if "skipped entry" in r.getMessage()]
    assert [str(i) in line for i, line in zip((junk, unknown, wrong_field), skipped)] == [True] * 3
    # a batch of nothing but junk still moves the cursor past it
    last_junk = bus.append(TICKS, b"")
    only_junk = bus.read(TICKS, after, timeout=0)
    assert only_junk.entries == () and only_junk.cursor == last_junk


def test_a_latest_value_that_cannot_be_decoded_reads_as_none(bus: Bus) -> None:
    bus.put(SNAPSHOT, b"\xc1")
    assert bus.get_latest(SNAPSHOT) is None


def test_close_wakes_a_blocked_reader_and_refuses_later_calls(bus: Bus) -> None:
    reader = Collector(bus, TICKS, bus.last_id(TICKS), want=1)
    reader.start()
    bus.close()
    reader.join(BOUND_S)
    assert not reader.is_alive() and reader.entries == []
    assert bus.read(TICKS, ZERO, timeout=BOUND_S).closed
    assert not bus.health().connected
    with pytest.raises(BusClosed):
        bus.publish(TICKS, tick(1))
    bus.close()  # idempotent


def test_a_healthy_bus_says_connected(bus: Bus) -> None:
    bus.ping()
    assert bus.health().connected and bus.health().error is None
    assert bus.connected


def test_names_are_checked(bus: Bus) -> None:
    with pytest.raises(ValueError, match="invalid topic name 'Ticks '"):
        bus.publish("Ticks ", tick(1))
    with pytest.raises(TypeError, match="not a bus message"):
        bus.publish(TICKS, {"number": 1})  # type: ignore[arg-type]


def test_a_relay_hands_every_batch_to_its_callback_in_order_until_the_bus_closes(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[int] = []
    failed: list[int] = []
    done = threading.Event()

    def deliver(batch: Batch) -> None:
        numbers = [e.message.number for e in batch.entries]
        if 3 in numbers and not failed:
            failed.extend(numbers)
            if 10 in numbers:
                done.set()
            raise RuntimeError("the receiver failed once")  # logged; the relay goes on
        received.extend(numbers)
        if 10 in numbers:
            done.set()

    relay = Relay(bus, TICKS, deliver, after=bus.last_id(TICKS), timeout_s=BOUND_S).start()
    for n in range(1, 11):
        bus.publish(TICKS, tick(n))
    assert done.wait(BOUND_S)

    def logged() -> bool:
        return any("handling the entries" in r.getMessage() for r in caplog.records)

    wait_until(logged, "the relay to log the failure", BOUND_S)
    assert 3 in failed and received == sorted(received)
    assert sorted(received + failed) == list(range(1, 11))  # each batch once, the failed one included
    assert relay.cursor == bus.last_id(TICKS)
    bus.close()
    assert relay.join(BOUND_S)
