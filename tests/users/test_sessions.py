"""The gateway's session cache and token check (ubot/users/sessions.py): a fake clock, a real
session table, no threads."""

from __future__ import annotations

import pytest

from tests.support.users import T0_MS
from ubot.models.tables import Session
from ubot.users import tokens
from ubot.users.sessions import CachedSession, Revoked, SessionCache, SessionReader

PW = "correct horse 42"


def entry(user_id: int = 1, session_id: int = 1, expires_at: int = T0_MS + 3_600_000) -> CachedSession:
    return CachedSession(user_id, session_id, expires_at, last_seen_at=T0_MS)


def test_an_entry_is_served_until_its_ttl_then_read_again(clock) -> None:
    cache = SessionCache(clock, ttl_s=10)
    assert cache.put("h1", entry(), cache.generation)

    clock.advance(9.9)
    assert cache.get("h1", T0_MS) is not None
    clock.advance(0.1)
    assert cache.get("h1", T0_MS) is None
    assert len(cache) == 0


def test_an_entry_is_never_served_past_the_session_expiry(clock) -> None:
    cache = SessionCache(clock, ttl_s=300)
    cache.put("h1", entry(expires_at=T0_MS + 1_000), cache.generation)

    assert cache.get("h1", T0_MS + 999) is not None
    assert cache.get("h1", T0_MS + 1_000) is None


def test_drop_forgets_one_token_or_every_token_of_a_user(clock) -> None:
    cache = SessionCache(clock)
    for token_hash, user_id in (("a1", 1), ("a2", 1), ("b1", 2)):
        cache.put(token_hash, entry(user_id), cache.generation)

    cache.drop(Revoked(1, "a1"))
    assert cache.get("a1", T0_MS) is None and cache.get("a2", T0_MS) is not None

    cache.drop(Revoked(1))
    assert cache.get("a2", T0_MS) is None
    assert cache.get("b1", T0_MS) is not None  # another user's sessions stay


def test_a_read_that_began_before_a_drop_is_not_cached(clock) -> None:
    cache = SessionCache(clock)
    began = cache.generation  # a reader read the session row ...
    cache.drop(Revoked(1, "h1"))  # ... the session was revoked meanwhile

    assert not cache.put("h1", entry(), began)
    assert cache.get("h1", T0_MS) is None
    assert cache.put("h1", entry(), cache.generation)


def test_the_least_recently_used_go_first_beyond_the_bound(clock) -> None:
    cache = SessionCache(clock, max_entries=2)
    cache.put("a", entry(1), cache.generation)
    cache.put("b", entry(2), cache.generation)
    cache.get("a", T0_MS)
    cache.put("c", entry(3), cache.generation)

    assert [cache.get(h, T0_MS) is not None for h in "abc"] == [True, False, True]
    cache.drop(Revoked(2))  # the index by user has no stale entry left
    assert len(cache) == 2


def test_a_ttl_of_zero_keeps_nothing(clock) -> None:
    cache = SessionCache(clock, ttl_s=0)
    assert not cache.put("h1", entry(), cache.generation)
    assert len(cache) == 0


class CountingLookup:
    def __init__(self, store) -> None:
        self.store = store
        self.reads = 0

    def __call__(self, token_hash: str, now_ms: int):
        self.reads += 1
        return self.store.live_session(token_hash, now_ms)


@pytest.fixture
def reader(store, clock):
    touched: list[tuple[int, int]] = []
    lookup = CountingLookup(store)
    reader = SessionReader(lookup, SessionCache(clock, ttl_s=10), clock, lambda *seen: touched.append(seen))
    reader.touched = touched  # type: ignore[attr-defined]
    reader.lookup_counter = lookup  # type: ignore[attr-defined]
    return reader


def test_the_reader_reads_the_table_once_per_ttl(manager, reader, clock) -> None:
    user = manager.register("alice", "alice@example.com", PW)
    token = manager.login("alice", PW, None).token

    assert [reader.authenticate(token) for _ in range(3)] == [user.id] * 3
    assert reader.lookup_counter.reads == 1
    clock.advance(10)
    assert reader.authenticate(token) == user.id
    assert reader.lookup_counter.reads == 2


@pytest.mark.parametrize("token", ["", "x" * 43, None, 42, "a" * 10_000])
def test_the_reader_refuses_anything_but_a_live_token(manager, reader, token) -> None:
    manager.register("alice", "alice@example.com", PW)
    manager.login("alice", PW, None)

    assert reader.authenticate(token) is None


def test_a_revoked_token_is_refused_at_once_once_dropped(manager, reader) -> None:
    manager.register("alice", "alice@example.com", PW)
    token = manager.login("alice", PW, None).token
    assert reader.authenticate(token) is not None

    revoked = manager.logout(token)
    assert reader.authenticate(token) is not None  # the cache did not hear of it yet: the TTL bounds it
    reader.cache.drop(revoked)
    assert reader.authenticate(token) is None


def test_the_reader_tells_when_a_session_was_seen_at_most_once_a_minute(manager, reader, clock) -> None:
    manager.register("alice", "alice@example.com", PW)
    token = manager.login("alice", PW, None).token
    session_id = Session.get().id

    clock.advance(59)
    reader.authenticate(token)
    assert reader.touched == []
    clock.advance(1)
    reader.authenticate(token)
    reader.authenticate(token)
    assert reader.touched == [(session_id, T0_MS + 60_000)]
    assert tokens.LAST_SEEN_RESOLUTION_MS == 60_000
