"""StreamHub: ids, visibility per user, resume, ring overflow, close, the heartbeat timeout."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ubot.stream.hub import Batch, StreamHub

FIRST = 1_000


def hub(capacity: int = 8) -> StreamHub:
    return StreamHub(capacity=capacity, first_id=FIRST)


def test_ids_increase_by_one_and_data_is_serialized_once() -> None:
    h = hub()
    assert h.last_id == FIRST - 1
    ids = [h.publish("snapshot", {"n": n, "name": "é"}) for n in range(3)]
    assert ids == [FIRST, FIRST + 1, FIRST + 2]
    batch = h.read(FIRST - 1, None, timeout=0)
    assert [e.id for e in batch.events] == ids
    assert [e.data for e in batch.events] == [f'{{"n":{n},"name":"é"}}' for n in range(3)]
    assert batch.cursor == FIRST + 2
    assert not batch.reset and not batch.closed


def test_default_ids_start_from_the_clock_so_a_restart_does_not_reuse_them() -> None:
    earlier = StreamHub()
    old_id = earlier.publish("snapshot", {})
    later = StreamHub()
    assert later.last_id >= old_id
    assert later.last_id < 2**53  # exact in JavaScript
    # An id from the earlier run is unknown to the later one.
    assert later.read(old_id, None, timeout=0).reset


def test_public_events_reach_everyone_private_ones_only_their_user() -> None:
    h = hub()
    h.publish("snapshot", {"tick": 1})
    h.publish("alert", {"for": 7}, user_id=7)
    h.publish("alert", {"for": 8}, user_id=8)
    h.publish("snapshot", {"tick": 2})

    def seen(user_id: int | None) -> list[str]:
        batch = h.read(FIRST - 1, user_id, timeout=0)
        assert batch.cursor == h.last_id  # past the events it may not see too
        return [e.data for e in batch.events]

    assert seen(None) == ['{"tick":1}', '{"tick":2}']
    assert seen(7) == ['{"tick":1}', '{"for":7}', '{"tick":2}']
    assert seen(8) == ['{"tick":1}', '{"for":8}', '{"tick":2}']


def test_resume_returns_only_what_came_after() -> None:
    h = hub()
    ids = [h.publish("snapshot", {"n": n}) for n in range(5)]
    assert [e.id for e in h.read(ids[2], None, timeout=0).events] == ids[3:]
    up_to_date = h.read(ids[-1], None, timeout=0)
    assert up_to_date == Batch((), ids[-1])


def test_an_id_older_than_the_ring_or_unknown_is_a_reset() -> None:
    h = hub(capacity=4)
    ids = [h.publish("snapshot", {"n": n}) for n in range(10)]
    # The ring keeps ids[6:]; resuming after ids[5] is still exact.
    assert [e.id for e in h.read(ids[5], None, timeout=0).events] == ids[6:]
    for unknown in (ids[4], FIRST - 1, -1, ids[-1] + 1):
        assert h.read(unknown, None, timeout=0) == Batch((), ids[-1], reset=True)
    # After the reset, the cursor it gave resumes normally.
    new = h.publish("snapshot", {"n": 10})
    assert [e.id for e in h.read(ids[-1], None, timeout=0).events] == [new]


def test_the_timeout_path_returns_an_empty_batch() -> None:
    h = hub()
    h.publish("alert", {}, user_id=9)  # not visible to this reader: still a timeout
    assert h.read(FIRST - 1, None, timeout=0.01) == Batch((), FIRST)


def test_a_waiting_reader_is_woken_by_a_publish() -> None:
    h = hub()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(h.read, h.last_id, 5, 30)
        event_id = h.publish("alert", {"x": 1}, user_id=5)
        batch = future.result(timeout=30)
    assert [e.id for e in batch.events] == [event_id]


def test_a_waiting_reader_keeps_waiting_through_other_users_events() -> None:
    h = hub()
    started = threading.Event()

    def reader() -> Batch:
        started.set()
        return h.read(h.last_id, 5, 30)

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(reader)
        started.wait(30)
        h.publish("alert", {"for": 6}, user_id=6)
        mine = h.publish("alert", {"for": 5}, user_id=5)
        batch = future.result(timeout=30)
    assert [e.data for e in batch.events] == ['{"for":5}']
    assert batch.events[0].id == mine


def test_close_wakes_every_reader_and_is_final() -> None:
    h = hub()
    h.publish("snapshot", {})
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(h.read, h.last_id, user, 30) for user in (None, 1, 2)]
        h.close()
        batches = [f.result(timeout=30) for f in futures]
    assert all(b.closed and not b.events for b in batches)
    assert h.closed
    # Events not read yet are still delivered, then the end.
    assert [e.data for e in h.read(FIRST - 1, None, timeout=30).events] == ["{}"]
    h.publish("snapshot", {"late": True})  # accepted, harmless
    h.close()


@pytest.mark.parametrize(
    ("event", "data"),
    [("bad name", {}), ("", {}), ("multi\nline", {}), ("snapshot", {"x": float("nan")})],
)
def test_bad_events_are_refused_before_anything_is_published(event: str, data: dict) -> None:
    h = hub()
    with pytest.raises(ValueError):
        h.publish(event, data)
    assert h.last_id == FIRST - 1
