"""Entry ids, the missed-entries rule, the messages' wire form: plain values, no bus."""

from __future__ import annotations

import msgspec
import pytest

from ubot.bus import TICKS, InProcessBus, SnapshotDocument, StreamEvent, TickReady
from ubot.bus.ids import MAX_SEQ, ZERO, EntryId, LogState
from ubot.bus.messages import MalformedMessage, decode, encode
from ubot.clocks import FakeClock


def test_ids_parse_print_and_order_as_redis_does() -> None:
    assert EntryId.parse("1733350000000-3") == EntryId(1733350000000, 3)
    assert EntryId.parse(b"5-0") == EntryId(5, 0)
    assert str(EntryId(1733350000000, 3)) == "1733350000000-3"
    assert EntryId(5, 10) > EntryId(5, 9) > EntryId(4, 99)


@pytest.mark.parametrize("text", ["", "5", "5-", "-1", "5-1-2", "a-1", " 5-1", "5-1\n", "1" * 21 + "-0"])
def test_a_text_that_is_no_id_is_refused_with_its_text(text: str) -> None:
    with pytest.raises(ValueError, match="is not an entry id"):
        EntryId.parse(text)


def test_an_id_part_above_64_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="above 2\\*\\*64"):
        EntryId.parse(f"{2**64}-0")
    assert EntryId.parse(f"{MAX_SEQ}-{MAX_SEQ}") == EntryId(MAX_SEQ, MAX_SEQ)


def test_successor_and_predecessor() -> None:
    assert EntryId(5, 3).successor(now_ms=9) == EntryId(9, 0)
    assert EntryId(5, 3).successor(now_ms=5) == EntryId(5, 4)
    assert EntryId(5, 3).successor(now_ms=2) == EntryId(5, 4)  # the clock stepped back
    assert EntryId(5, 3).predecessor() == EntryId(5, 2)
    assert EntryId(5, 0).predecessor() == EntryId(4, MAX_SEQ)
    assert ZERO.predecessor() == ZERO


def test_in_process_ids_keep_increasing_when_the_clock_stands_still_or_steps_back() -> None:
    clock = FakeClock(1_800_000_000.0)
    bus = InProcessBus(clock)
    ids = [bus.publish(TICKS, TickReady(1, 1, 1, 1, 1)) for _ in range(3)]
    clock.advance(-10)
    ids.append(bus.publish(TICKS, TickReady(1, 1, 1, 1, 1)))
    clock.advance(20)
    ids.append(bus.publish(TICKS, TickReady(1, 1, 1, 1, 1)))
    start = 1_800_000_000_000
    assert ids == [
        EntryId(start, 0),
        EntryId(start, 1),
        EntryId(start, 2),
        EntryId(start, 3),
        EntryId(start + 10_000, 0),
    ]


def test_missed_entries() -> None:
    fresh = LogState(
        length=3, entries_added=3, first=EntryId(10, 0), last=EntryId(12, 0), max_deleted=EntryId(9, MAX_SEQ)
    )
    assert not fresh.missed(ZERO)
    assert not fresh.missed(EntryId(9, MAX_SEQ))  # just before the first entry
    assert fresh.missed(EntryId(9, 5))  # from before the log existed
    assert fresh.missed(EntryId(12, 1))  # never given
    assert not fresh.missed(EntryId(12, 0))
    trimmed = LogState(
        length=3, entries_added=10, first=EntryId(20, 0), last=EntryId(22, 0), max_deleted=EntryId(9, MAX_SEQ)
    )
    assert trimmed.missed(ZERO)
    assert trimmed.missed(EntryId(15, 0))
    assert not trimmed.missed(EntryId(19, MAX_SEQ))  # read up to the entry just before the oldest held
    assert not trimmed.missed(EntryId(20, 0))
    assert not LogState().missed(ZERO)


def test_messages_round_trip_and_bytes_stay_bytes() -> None:
    for message in (
        TickReady(number=3, snapshot_id=7, snapshot_ms=60_000, scheduled_ms=60_000, fired_ms=60_012),
        TickReady(1, 1, 1, 1, 1, scanners=("scanner-a", "scanner-b")),
        StreamEvent(event="alert", data='{"id":1}', user_id=5),
        StreamEvent(event="snapshot", data="{}"),
        SnapshotDocument(etag='"a"', body=b"\x00{}", snapshot_id=1, snapshot_ms=2),
    ):
        assert decode(encode(message)) == message
    assert msgspec.msgpack.decode(encode(StreamEvent("snapshot", "{}")))["type"] == "event"


def test_a_malformed_message_names_what_is_wrong() -> None:
    with pytest.raises(MalformedMessage, match="snapshot_id"):
        decode(
            msgspec.msgpack.encode(
                {"type": "tick", "number": 1, "snapshot_ms": 1, "scheduled_ms": 1, "fired_ms": 1}
            )
        )
    with pytest.raises(MalformedMessage, match="Invalid value 'nope'"):
        decode(msgspec.msgpack.encode({"type": "nope"}))
    with pytest.raises(MalformedMessage):
        decode(b"")
