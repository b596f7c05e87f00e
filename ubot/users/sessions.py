"""The gateway's token check, on its own read path: :class:`SessionReader` reads the ``session``
table on the calling thread's own database connection, behind :class:`SessionCache`. No request
waits in the UserManager's mailbox to be authenticated (nor, therefore, behind anybody's argon2).

The cache keeps a live session for at most ``ttl_s`` seconds (``[accounts] session_cache_s``) and
never past its expiry. Whatever ends sessions drops them from the cache at once, in the process
that ended them, before the request that ended them is answered: logout (the token), one session
logged out by its id (its token), log out everywhere, a password change, and a login that revoked
the user's oldest session beyond the limit (all the user's entries); the other gateway processes drop them when the
``SessionsRevoked`` message reaches them over the bus (``ubot/bus/messages.py``, milliseconds).
If that message is lost (the bus unreachable), the TTL bounds how long another process may still
accept a revoked token; when a process's reader of the bus reports missed entries it clears its
whole cache.

A read that started before a revocation cannot put the revoked session back: :meth:`SessionCache.put`
only stores an entry if nothing was dropped since the read began (:attr:`SessionCache.generation`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ubot.clocks import Clock
from ubot.users import tokens

#: Default of ``[accounts] session_cache_s``.
DEFAULT_TTL_S = 10.0
#: Sessions kept at most (the least recently used go first).
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Revoked:
    """Sessions that ended: the one of ``token_hash``, or (None) every session of ``user_id``."""

    user_id: int
    token_hash: str | None = None


@dataclass
class CachedSession:
    user_id: int
    session_id: int
    expires_at: int  # epoch ms: never served past it
    last_seen_at: int  # epoch ms, as last written (or about to be)
    cached_at: float = 0.0  # clock seconds


class SessionCache:
    """Live sessions by token hash, for ``ttl_s`` seconds (0: nothing is kept). Thread-safe."""

    def __init__(self, clock: Clock, ttl_s: float = DEFAULT_TTL_S, max_entries: int = MAX_ENTRIES) -> None:
        self.clock = clock
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, CachedSession] = OrderedDict()
        self._by_user: dict[int, set[str]] = {}
        self._lock = threading.Lock()
        self._generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def generation(self) -> int:
        """Read before a database read whose result goes to :meth:`put`."""
        with self._lock:
            return self._generation

    def get(self, token_hash: str, now_ms: int) -> CachedSession | None:
        with self._lock:
            entry = self._entries.get(token_hash)
            if entry is None:
                return None
            if self.clock.now() - entry.cached_at >= self.ttl_s or now_ms >= entry.expires_at:
                self._remove(token_hash)
                return None
            self._entries.move_to_end(token_hash)
            return entry

    def put(self, token_hash: str, entry: CachedSession, generation: int) -> bool:
        """Keep ``entry`` unless something was dropped since ``generation`` was read (the entry may
        be a revoked session read just before); whether it was kept."""
        if self.ttl_s <= 0:
            return False
        with self._lock:
            if generation != self._generation:
                return False
            entry.cached_at = self.clock.now()
            self._remove(token_hash)
            self._entries[token_hash] = entry
            self._by_user.setdefault(entry.user_id, set()).add(token_hash)
            while len(self._entries) > self.max_entries:
                self._remove(next(iter(self._entries)))
            return True

    def drop(self, revoked: Revoked) -> None:
        """Forget the revoked session(s) now."""
        with self._lock:
            self._generation += 1
            if revoked.token_hash is not None:
                self._remove(revoked.token_hash)
            else:
                for token_hash in tuple(self._by_user.get(revoked.user_id, ())):
                    self._remove(token_hash)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._by_user.clear()

    def _remove(self, token_hash: str) -> None:
        entry = self._entries.pop(token_hash, None)
        if entry is not None:
            hashes = self._by_user.get(entry.user_id)
            if hashes is not None:
                hashes.discard(token_hash)
                if not hashes:
                    del self._by_user[entry.user_id]


class SessionReader:
    """``authenticate(token)``: the user id of a live session, or None.

    ``lookup(token_hash, now_ms)``: the live session row (``UserStore.live_session``, on the calling
    thread's connection). ``touch(session_id, now_ms)``: record that the session was seen (at most
    once per ``tokens.LAST_SEEN_RESOLUTION_MS``; the gateway tells the UserManager, without waiting).
    """

    def __init__(
        self,
        lookup: Callable[[str, int], Any],
        cache: SessionCache,
        clock: Clock,
        touch: Callable[[int, int], object] | None = None,
    ) -> None:
        self.lookup = lookup
        self.cache = cache
        self.clock = clock
        self.touch = touch

    def authenticate(self, token: object) -> int | None:
        if not tokens.well_formed(token):
            return None
        assert isinstance(token, str)
        token_hash = tokens.hash_token(token)
        now_ms = int(self.clock.now() * 1000)
        entry = self.cache.get(token_hash, now_ms)
        if entry is None:
            generation = self.cache.generation
            row = self.lookup(token_hash, now_ms)
            if row is None or not tokens.same(row.token_hash, token_hash):
                return None
            entry = CachedSession(row.user_id, row.id, row.expires_at, row.last_seen_at)
            self.cache.put(token_hash, entry, generation)
        if self.touch is not None and now_ms - entry.last_seen_at >= tokens.LAST_SEEN_RESOLUTION_MS:
            entry.last_seen_at = now_ms
            self.touch(entry.session_id, now_ms)
        return entry.user_id
