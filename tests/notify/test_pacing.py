"""PacedQueues: per-destination order and pace, destinations independent; time passed in."""

from __future__ import annotations

from ubot.notify.pacing import PacedQueues


def test_an_empty_queue_has_nothing_to_take() -> None:
    queues: PacedQueues[str] = PacedQueues(1.0)

    assert queues.take(100.0) is None
    assert queues.next_time() is None
    assert len(queues) == 0


def test_an_item_waits_until_it_is_due() -> None:
    queues: PacedQueues[str] = PacedQueues()
    queues.push("chat-1", "a", due=105.0)

    assert queues.take(104.9) is None
    assert queues.next_time() == 105.0
    assert queues.take(105.0) == ("chat-1", "a")


def test_one_destination_sends_one_at_a_time_in_order_spaced_by_the_interval() -> None:
    queues: PacedQueues[str] = PacedQueues(1.0)
    for item in ("a", "b", "c"):
        queues.push("chat-1", item, due=100.0)

    assert queues.take(100.0) == ("chat-1", "a")
    assert queues.take(100.0) is None  # "a" is in flight
    assert queues.next_time() is None  # nothing can go before "a" is done
    assert queues.in_flight == 1

    queues.done("chat-1", at=100.4)
    assert queues.next_time() == 101.4
    assert queues.take(101.3) is None
    assert queues.take(101.4) == ("chat-1", "b")
    queues.done("chat-1", at=101.5)
    assert queues.take(102.5) == ("chat-1", "c")


def test_destinations_do_not_wait_for_each_other() -> None:
    queues: PacedQueues[str] = PacedQueues(1.0)
    queues.push("slow", "s1", due=100.0)
    queues.push("slow", "s2", due=100.0)
    queues.push("fast", "f1", due=100.0)
    queues.push("fast", "f2", due=100.0)

    assert queues.take(100.0) == ("slow", "s1")
    assert queues.take(100.0) == ("fast", "f1")  # while "slow" is still in flight
    queues.done("fast", at=100.1)
    assert queues.take(101.1) == ("fast", "f2")  # "slow" still in flight: no matter
    assert queues.in_flight == 2


def test_the_item_ready_the_longest_goes_first() -> None:
    queues: PacedQueues[str] = PacedQueues()
    queues.push("b", "late", due=103.0)
    queues.push("a", "early", due=101.0)
    queues.push("c", "middle", due=102.0)

    assert [queues.take(110.0) for _ in range(3)] == [("a", "early"), ("c", "middle"), ("b", "late")]


def test_items_of_one_destination_go_by_due_time_then_arrival() -> None:
    queues: PacedQueues[str] = PacedQueues()
    queues.push("d", "retry", due=130.0)
    queues.push("d", "first", due=100.0)
    queues.push("d", "second", due=100.0)

    taken = []
    for now in (100.0, 100.0, 130.0):
        destination, item = queues.take(now)  # type: ignore[misc]
        taken.append(item)
        queues.done(destination, at=now)
    assert taken == ["first", "second", "retry"]


def test_a_provider_pause_longer_than_the_interval_is_honoured() -> None:
    queues: PacedQueues[str] = PacedQueues(1.0)
    queues.push("chat-1", "a", due=100.0)
    queues.push("chat-1", "b", due=100.0)
    queues.push("chat-2", "c", due=100.0)

    queues.take(100.0)
    queues.done("chat-1", at=100.0, pause_s=30.0)  # 429 retry_after 30

    assert queues.take(100.0) == ("chat-2", "c")  # another chat is not paused
    queues.done("chat-2", at=100.0)
    assert queues.next_time() == 130.0
    assert queues.take(129.0) is None
    assert queues.take(130.0) == ("chat-1", "b")


def test_a_pause_shorter_than_the_interval_does_not_shorten_it() -> None:
    queues: PacedQueues[str] = PacedQueues(2.0)
    queues.push("d", "a", due=0.0)
    queues.push("d", "b", due=0.0)
    queues.take(0.0)
    queues.done("d", at=10.0, pause_s=0.5)

    assert queues.next_time() == 12.0


def test_the_pace_is_remembered_for_an_item_pushed_later() -> None:
    queues: PacedQueues[str] = PacedQueues(1.0)
    queues.push("d", "a", due=100.0)
    queues.take(100.0)
    queues.done("d", at=100.0)

    queues.push("d", "b", due=100.5)

    assert queues.take(100.5) is None
    assert queues.take(101.0) == ("d", "b")


def test_a_destination_idle_past_its_pace_sends_at_once() -> None:
    queues: PacedQueues[str] = PacedQueues(1.0)
    queues.push("d", "a", due=100.0)
    queues.take(100.0)
    queues.done("d", at=100.0)
    assert queues.take(200.0) is None  # nothing waits; the destination is forgotten

    queues.push("d", "b", due=200.0)

    assert queues.take(200.0) == ("d", "b")


def by_user(item: str) -> str:
    return item.split(":")[0]  # "alice:1" belongs to alice


def test_one_owner_has_at_most_per_owner_items_in_flight_over_all_its_destinations() -> None:
    queues: PacedQueues[str] = PacedQueues(owner=by_user, per_owner=2)
    for n in range(1, 5):
        queues.push(f"https://slow-{n}.example", f"alice:{n}", due=100.0)
    queues.push("https://bob.example", "bob:1", due=100.5)  # due later than all of alice's

    taken = [queues.take(101.0), queues.take(101.0), queues.take(101.0), queues.take(101.0)]

    assert [item for _, item in filter(None, taken)] == ["alice:1", "alice:2", "bob:1"]
    assert queues.owner_in_flight("alice") == 2
    assert queues.next_time() is None  # alice's others wait for one of hers to end, not for a time
    queues.done("https://slow-1.example", at=102.0)
    assert queues.owner_in_flight("alice") == 1
    assert queues.next_time() == 100.0
    assert queues.take(102.0) == ("https://slow-3.example", "alice:3")


def test_a_shared_destination_waits_while_its_next_items_owner_is_at_the_cap() -> None:
    queues: PacedQueues[str] = PacedQueues(owner=by_user, per_owner=1)
    queues.push("https://alice.example", "alice:1", due=100.0)
    queues.push("group-chat", "alice:2", due=100.0)
    queues.push("group-chat", "bob:1", due=100.0)

    assert queues.take(100.0) == ("https://alice.example", "alice:1")
    assert queues.take(100.0) is None  # the group's next is alice's: its order holds
    queues.done("https://alice.example", at=100.0)
    assert queues.take(100.0) == ("group-chat", "alice:2")


def test_without_an_owner_function_there_is_no_cap() -> None:
    queues: PacedQueues[str] = PacedQueues(per_owner=1)
    queues.push("a", "alice:1", due=100.0)
    queues.push("b", "alice:2", due=100.0)

    assert queues.take(100.0) is not None
    assert queues.take(100.0) is not None


def test_rescheduled_items_come_forward_keep_their_order_and_their_pace() -> None:
    """A released hold (``Dispatcher.release``): the items chosen, due later, are due at the new
    time; one due earlier already, or not chosen, stays as it was; the pace still holds."""
    queues: PacedQueues[str] = PacedQueues(min_interval_s=1.0)
    queues.push("chat", "held-1", 100.0)
    queues.push("chat", "held-2", 100.0)
    queues.push("chat", "other", 100.0)
    queues.push("chat", "soon", 5.0)
    queues.push("mail", "held-3", 100.0)

    moved = queues.reschedule(lambda item: item.upper() if item.startswith(("held", "soon")) else None, 10.0)

    assert moved == 3  # "soon" is due before 10 already
    assert queues.take(9.0) == ("chat", "soon")
    queues.done("chat", 9.0)
    assert queues.take(9.5) is None
    assert [queues.take(10.0), queues.take(10.0)] == [("chat", "HELD-1"), ("mail", "HELD-3")]
    queues.done("chat", 10.0)
    assert queues.take(10.5) is None  # the chat's pace: one a second
    assert queues.take(11.0) == ("chat", "HELD-2")
    queues.done("chat", 11.0)
    assert queues.take(50.0) is None and queues.next_time() == 100.0
    assert queues.take(100.0) == ("chat", "other")
