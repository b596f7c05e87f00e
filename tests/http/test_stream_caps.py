"""Stream slots per client: one address (or one account) opening streams until refused, while other
addresses and users still get theirs; and a slot freed as soon as its client leaves.

All real clients here are 127.0.0.1: addresses come from ``X-Forwarded-For`` through the real
protection middleware with 127.0.0.1 as the trusted proxy (``[http] trusted_proxies``), exactly as a
gateway behind a proxy finds them. A client leaving is the server's ``http.disconnect`` here;
tests/test_stream_e2e.py does it over TCP through gunicorn.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from falcon.testing import TestClient

from tests.http.support import assert_error
from tests.http.test_stream import ALICE, Setup, Stream, hub_on
from ubot.bus import InProcessBus
from ubot.clocks import FakeClock
from ubot.config import load_settings
from ubot.http.app import create_app
from ubot.http.protection import protection_middleware
from ubot.stream.slots import IN_ALL, PER_ADDRESS, PER_USER, StreamCaps, StreamSlots, TooManyStreams

BOB = {"Authorization": "Bearer token-of-8"}
MALLORY = "203.0.113.66"


# --- the counts (no HTTP) ----------------------------------------------------------------------


def refusal(slots: StreamSlots, address: str, user_id: int | None = None) -> tuple[str, int]:
    with pytest.raises(TooManyStreams) as refused:
        slots.acquire(address, user_id)
    return refused.value.cap, refused.value.limit


def test_each_cap_refuses_on_its_own_and_names_itself() -> None:
    slots = StreamSlots(StreamCaps(total=5, per_address=2, per_user=3))
    taken = [slots.acquire("a", None), slots.acquire("a", 7)]
    assert refusal(slots, "a") == (PER_ADDRESS, 2)
    assert refusal(slots, "a", 8) == (PER_ADDRESS, 2)
    taken += [slots.acquire("b", 7), slots.acquire("c", 7)]
    assert refusal(slots, "d", 7) == (PER_USER, 3)  # a fresh address: the user's cap still holds
    taken.append(slots.acquire("d", 8))
    assert refusal(slots, "e") == (IN_ALL, 5)
    assert refusal(slots, "a", 7) == (PER_USER, 3)  # the client's own cap is named first
    assert (slots.open(), slots.open(address="a"), slots.open(user_id=7)) == (5, 2, 3)
    for slot in taken:
        slots.release(slot)
    assert (slots.open(), slots.open(address="a"), slots.open(user_id=7)) == (0, 0, 0)
    assert slots.acquire("a", 7)


def test_a_refusal_takes_nothing() -> None:
    slots = StreamSlots(StreamCaps(total=3, per_address=1, per_user=1))
    slots.acquire("a", 7)
    for _ in range(10):
        refusal(slots, "a")
        refusal(slots, "b", 7)
    assert (slots.open(), slots.open(address="b")) == (1, 0)


# --- through the app, addresses from X-Forwarded-For -------------------------------------------


class Behind:
    """The real app behind a trusted proxy: every client is 127.0.0.1, its address the header's."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.open_streams: list[Stream] = []

    def open(self, address: str, headers: dict[str, str] | None = None) -> Stream:
        stream = self.setup.open(headers={**(headers or {}), "X-Forwarded-For": address})
        if stream.status.startswith("200"):
            stream.next()  # the head: the stream is running
            self.open_streams.append(stream)
        return stream

    def refused(self, address: str, headers: dict[str, str] | None = None) -> tuple[int, dict, str]:
        result = TestClient(self.setup.app).simulate_get(
            "/v1/stream", headers={**(headers or {}), "X-Forwarded-For": address}
        )
        assert result.status_code in (429, 503), result.text
        return result.status_code, assert_error(result, result.status_code), result.headers["retry-after"]


@pytest.fixture
def behind(canned) -> Iterator[Behind]:
    settings = load_settings(None, environ={"UBOT_HTTP_TRUSTED_PROXIES": "127.0.0.1"})
    hub = hub_on(InProcessBus())
    app = create_app(
        canned.gateway,
        hub=hub,
        max_streams=6,
        max_streams_per_address=2,
        max_streams_per_user=3,
        heartbeat_s=30,
        protection=protection_middleware(settings.http, settings.limits, clock=FakeClock()),
    )
    client = Behind(Setup(hub, app))
    yield client
    for stream in client.open_streams:
        stream.close()
    hub.close()


def open_until_refused(behind: Behind, addresses: Iterator[str], headers: dict | None = None) -> int:
    """Open streams (each from the next address) until one is refused; how many were accepted."""
    for accepted, address in enumerate(addresses):
        if not behind.open(address, headers).status.startswith("200"):
            return accepted
    raise AssertionError("never refused")


def test_one_address_takes_its_share_and_others_still_get_theirs(behind) -> None:
    assert open_until_refused(behind, iter([MALLORY] * 10)) == 2
    status, error, retry_after = behind.refused(MALLORY)
    assert (status, retry_after) == (429, "10")
    assert error == {
        "title": "Too many streams from this address",
        "description": "2 event streams are open from your address, the most this server allows per "
        "client address; close one, or retry in 10 s",
    }
    assert behind.refused(MALLORY, ALICE)[0] == 429  # a token does not lift the address's cap
    # Another address, and a user elsewhere, are served.
    assert behind.open("198.51.100.7").status == "200 OK"
    assert behind.open("198.51.100.8", ALICE).status == "200 OK"
    # One of Mallory's streams ends: Mallory may open one again.
    behind.open_streams.pop(0).close()
    assert behind.open(MALLORY).status == "200 OK"


def test_one_user_from_many_addresses_takes_its_share_and_others_still_get_theirs(behind) -> None:
    addresses = (f"192.0.2.{n}" for n in range(1, 50))
    assert open_until_refused(behind, addresses, ALICE) == 3
    status, error, retry_after = behind.refused("192.0.2.99", ALICE)
    assert (status, retry_after) == (429, "10")
    assert error == {
        "title": "Too many streams for this account",
        "description": "3 event streams are open for your account, the most this server allows per "
        "user; close one, or retry in 10 s",
    }
    # Another user, and anonymous clients, from that very address are served.
    assert behind.open("192.0.2.99", BOB).status == "200 OK"
    assert behind.open("192.0.2.99").status == "200 OK"


def test_beyond_every_clients_share_the_server_cap_is_a_503(behind) -> None:
    addresses = (f"198.51.100.{n}" for n in range(1, 50))
    assert open_until_refused(behind, addresses) == 6
    status, error, retry_after = behind.refused("198.51.100.99")
    assert (status, retry_after) == (503, "10")
    assert error["title"] == "Too many streams"
    assert error["description"].startswith("6 event streams are open, the most this server allows")


def test_an_ipv6_client_counts_with_its_64(behind) -> None:
    assert behind.open("2001:db8:1:2::1").status == "200 OK"
    assert behind.open("2001:db8:1:2:ffff::9").status == "200 OK"
    assert behind.refused("2001:db8:1:2::abcd")[0] == 429
    assert behind.open("2001:db8:1:3::1").status == "200 OK"  # another /64


def test_without_a_trusted_proxy_the_header_is_ignored(canned) -> None:
    settings = load_settings(None, environ={})
    hub = hub_on(InProcessBus())
    app = create_app(
        canned.gateway,
        hub=hub,
        max_streams=6,
        max_streams_per_address=2,
        protection=protection_middleware(settings.http, settings.limits, clock=FakeClock()),
    )
    setup = Setup(hub, app)
    streams = [setup.open(headers={"X-Forwarded-For": f"192.0.2.{n}"}) for n in range(2)]
    refused = TestClient(app).simulate_get("/v1/stream", headers={"X-Forwarded-For": "192.0.2.9"})
    assert assert_error(refused, 429)["title"] == "Too many streams from this address"  # all 127.0.0.1
    for stream in streams:
        stream.close()
    hub.close()


# --- a client that leaves ----------------------------------------------------------------------


def test_a_stream_whose_client_left_ends_and_frees_its_slot_without_a_heartbeat(canned) -> None:
    hub = hub_on()
    setup = Setup(hub, create_app(canned.gateway, hub=hub, max_streams_per_address=1, heartbeat_s=300))
    stream = setup.open()
    stream.next()
    assert setup.open().status == "429 Too Many Requests"
    stream.close()  # returns once the app's call ended: at the disconnect, not the heartbeat 300 s away
    assert list(stream.chunks) == []
    again = setup.open()
    assert again.status == "200 OK"
    again.close()
    hub.close()
