"""StreamHub over each bus (in-process, Redis): bus ids, visibility per user, resume from the ring
and from the bus (a gateway that started later, a ring that overflowed), resets, close."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.bus.conftest import MakeBus, clock, kind, make_bus, prefix, redis_admin  # noqa: F401
from ubot.bus import EVENTS, Bus, EntryId, InProcessBus
from ubot.clocks import FakeClock
from ubot.stream.hub import UNKNOWN, Batch, StreamHub
from ubot.stream.publisher import EventPublisher

WAIT_S = 30.0


@pytest.fixture
def bus(make_bus: MakeBus) -> Bus:  # noqa: F811
    return make_bus()


@pytest.fixture
def hubs(bus: Bus):
    made: list[StreamHub] = []

    def make(capacity: int = 8, start: bool = True) -> StreamHub:
        hub = StreamHub(bus, capacity, poll_s=1.0)
        made.append(hub.start() if start else hub)
        return hub

    yield make
    for hub in made:
        hub.close()


def publish(bus: Bus, *events: tuple[str, dict, int | None]) -> list[EntryId]:
    publisher = EventPublisher(bus)
    return [publisher.publish(name, data, user) for name, data, user in events]


def caught_up(hub: StreamHub, entry_id: EntryId) -> None:
    assert hub.caught_up(entry_id, WAIT_S), f"the relay did not reach {entry_id}"


def test_ids_are_the_bus_ids_and_data_is_serialized_once(bus, hubs) -> None:
    hub = hubs()
    start = hub.last_id
    ids = publish(bus, *(("snapshot", {"n": n, "name": "é"}, None) for n in range(3)))
    assert hub.last_id == ids[-1] == bus.last_id(EVENTS)
    caught_up(hub, ids[-1])
    batch = hub.read(start, None, timeout=0)
    assert [e.id for e in batch.events] == ids
    assert [e.data for e in batch.events] == [f'{{"n":{n},"name":"é"}}' for n in range(3)]
    assert batch == Batch(batch.events, ids[-1])


def test_public_events_reach_everyone_private_ones_only_their_user(bus, hubs) -> None:
    hub = hubs()
    start = hub.last_id
    ids = publish(
        bus,
        ("snapshot", {"tick": 1}, None),
        ("alert", {"for": 7}, 7),
        ("alert", {"for": 8}, 8),
        ("snapshot", {"tick": 2}, None),
    )
    caught_up(hub, ids[-1])

    def seen(user_id: int | None) -> list[str]:
        batch = hub.read(start, user_id, timeout=0)
        assert batch.cursor == ids[-1]  # past the events it may not see too
        return [e.data for e in batch.events]

    assert seen(None) == ['{"tick":1}', '{"tick":2}']
    assert seen(7) == ['{"tick":1}', '{"for":7}', '{"tick":2}']
    assert seen(8) == ['{"tick":1}', '{"for":8}', '{"tick":2}']


def test_resume_returns_only_what_came_after(bus, hubs) -> None:
    hub = hubs()
    ids = publish(bus, *(("snapshot", {"n": n}, None) for n in range(5)))
    caught_up(hub, ids[-1])
    assert [e.id for e in hub.read(ids[2], None, timeout=0).events] == ids[3:]
    assert hub.read(ids[-1], None, timeout=0) == Batch((), ids[-1])


def read_all(hub: StreamHub, after: EntryId, until: EntryId) -> list[EntryId]:
    """The ids of every event after ``after`` up to ``until``, over as many reads as it takes."""
    read: list[EntryId] = []
    cursor = after
    while cursor != until:
        batch = hub.read(cursor, None, timeout=0)
        assert not batch.reset
        assert batch.cursor > cursor or batch.events
        read += [e.id for e in batch.events]
        cursor = batch.cursor
    return read


def test_an_id_older_than_the_ring_is_caught_up_from_the_bus(bus, hubs) -> None:
    hub = hubs(capacity=4)
    start = hub.last_id
    ids = publish(bus, *(("snapshot", {"n": n}, None) for n in range(10)))
    caught_up(hub, ids[-1])
    assert read_all(hub, start, ids[-1]) == ids


def test_a_gateway_started_later_resumes_a_client_from_before_its_start(bus, hubs) -> None:
    early = publish(bus, *(("snapshot", {"n": n}, None) for n in range(3)))
    hub = hubs()  # another gateway, or this one restarted: it follows the topic from now on
    late = publish(bus, ("snapshot", {"n": 3}, None))
    caught_up(hub, late[0])
    assert read_all(hub, early[0], late[0]) == early[1:] + late


def test_an_unknown_id_is_a_reset_with_the_current_position(bus, hubs) -> None:
    hub = hubs()
    ids = publish(bus, *(("snapshot", {"n": n}, None) for n in range(3)))
    caught_up(hub, ids[-1])
    # Ids of another log: an earlier run's in-process bus, a Redis that restarted and lost it.
    foreign = publish(InProcessBus(FakeClock(1_000_000.0)), ("snapshot", {}, None))[0]
    ahead = EntryId(ids[-1].ms + 10**9, 0)
    for unknown in (UNKNOWN, ahead, foreign):
        assert hub.read(unknown, None, timeout=0) == Batch((), ids[-1], reset=True), unknown
    # After the reset, the cursor it gave resumes normally.
    new = publish(bus, ("snapshot", {"n": 3}, None))
    caught_up(hub, new[0])
    assert [e.id for e in hub.read(ids[-1], None, timeout=0).events] == new


def test_an_id_the_bus_trimmed_is_a_reset() -> None:
    bus = InProcessBus(maxlen=3)  # Redis' MAXLEN ~ trims whole nodes: exact only in-process
    hub = StreamHub(bus, 2).start()
    try:
        ids = publish(bus, *(("snapshot", {"n": n}, None) for n in range(6)))
        caught_up(hub, ids[-1])
        assert hub.read(ids[1], None, timeout=0) == Batch((), ids[-1], reset=True)
        assert [e.id for e in hub.read(ids[2], None, timeout=0).events] == ids[3:]  # from the bus
    finally:
        hub.close()


def test_an_id_the_relay_has_not_reached_yet_is_waited_for_not_reset(bus, hubs) -> None:
    hub = hubs(start=False)  # its relay is not running: the bus is ahead of the ring
    ids = publish(bus, *(("snapshot", {"n": n}, None) for n in range(2)))
    assert hub.read(ids[-1], None, timeout=0) == Batch((), ids[-1])
    assert [e.id for e in hub.read(ids[0], None, timeout=0).events] == ids[1:]  # from the bus


def test_a_waiting_reader_keeps_waiting_through_other_users_events(bus, hubs) -> None:
    hub = hubs()
    start = hub.last_id
    started = threading.Event()

    def reader() -> Batch:
        started.set()
        return hub.read(start, 5, WAIT_S)

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(reader)
        started.wait(WAIT_S)
        ids = publish(bus, ("alert", {"for": 6}, 6), ("alert", {"for": 5}, 5))
        batch = future.result(timeout=WAIT_S)
    assert [e.data for e in batch.events] == ['{"for":5}']
    assert batch.events[0].id == ids[1]


def test_close_wakes_every_reader_and_is_final(bus, hubs) -> None:
    hub = hubs()
    start = hub.last_id
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(hub.read, start, user, WAIT_S) for user in (None, 1, 2)]
        hub.close()
        batches = [f.result(timeout=WAIT_S) for f in futures]
    assert all(b.closed and not b.events for b in batches)
    assert hub.closed
    hub.close()


@pytest.mark.parametrize(
    ("event", "data"),
    [("bad name", {}), ("", {}), ("multi\nline", {}), ("snapshot", {"x": float("nan")})],
)
def test_bad_events_are_refused_before_anything_is_published(bus, event: str, data: dict) -> None:
    with pytest.raises(ValueError):
        EventPublisher(bus).publish(event, data)
    assert bus.last_id(EVENTS) == EntryId(0, 0)
