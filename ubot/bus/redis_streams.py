"""The bus over Redis (every role but ``all``), with redis-py; Redis 7 or later (``XSETID`` with
``MAXDELETEDID``, ``XINFO STREAM``'s ``entries-added`` and ``recorded-first-entry-id``).

Keys, all under a configurable prefix (``ubot`` by default; tests use one of their own):

* ``<prefix>:topic:<name>``: a stream. :meth:`RedisBus.append` is ``XADD <key> MAXLEN ~ <n> * m
  <payload>`` in a small script that, when the stream is new, records its first id's predecessor as
  the stream's ``max-deleted-entry-id`` (``XSETID``): an id from before the stream existed (Redis
  restarted and lost it) then reads as missed (:mod:`ubot.bus.ids`).
* ``<prefix>:latest:<key>``: a string holding one encoded message.
* ``<prefix>:group:<name>``: a sorted set of members scored by expiry (epoch ms). Expiry is on
  Redis' own clock (``TIME``, one clock for every machine), or on an injected clock (tests).

Reading is ``XINFO STREAM`` and ``XREAD COUNT`` in one ``MULTI`` (the entries and the verdict on
missed ones come from the same instant); when there is nothing yet, ``XREAD BLOCK`` waits (in
slices of at most ``max_block_s``, with a socket timeout above it, so a half-open connection is
noticed) and the read starts over.

Failures: a connection error or timeout marks the bus disconnected (:meth:`RedisBus.health`, for
``/health`` "degraded") and the call is retried on a new connection with jittered exponential
backoff (``redis.backoff.EqualJitterBackoff``) within the call's time budget (a read's timeout,
``write_budget_s`` for the rest), then raises :class:`~ubot.bus.base.BusUnavailable`. After such a
failure Redis is *down* (:mod:`ubot.bus.outage`, logged once): every call but a read is refused at
once, without touching the network, except one single-attempt probe per ``retry_s``; the first call
that succeeds (a probe, or a reader's) ends the outage (logged once). So the engine's tick, which
publishes, never waits on a Redis that is gone: the first publish of an outage costs
``write_budget_s`` at most, the others nothing (a probe: one connection attempt). A reader keeps its
cursor, so reading again after a failure (or after Redis restarted) resumes without loss; what Redis
lost in a restart is reported as missed, and caught up from the database by the caller: nothing
kept travels only on the bus. redis-py's own retries are off, so every failure is seen here.

Why synchronous only: each process reads each topic from one thread (a scanner's tick loop, one
reader per gateway process that fans entries out in memory to its clients, handing them to the event
loop with ``loop.call_soon_threadsafe``). That needs one blocked connection per topic per process,
whatever the number of SSE clients, and one implementation of the retry rules. An async reader per
client would hold one Redis connection per open stream (2,000 streams: 2,000 connections).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis
from redis.backoff import EqualJitterBackoff
from redis.retry import Retry

from ubot.bus.base import Bus, BusClosed, BusHealth, BusUnavailable, RawBatch, check_name
from ubot.bus.ids import EntryId, LogState
from ubot.bus.outage import DEFAULT_RETRY_S, Outage
from ubot.clocks import Clock

T = TypeVar("T")
DEFAULT_MAXLEN = 10_000
DEFAULT_PREFIX = "ubot"
FIELD = b"m"

_APPEND = """
local existed = redis.call('EXISTS', KEYS[1])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[2])
if existed == 0 then
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  local floor
  if tonumber(seq) > 0 then
    floor = ms .. '-' .. string.format('%d', tonumber(seq) - 1)
  else
    floor = string.format('%d', tonumber(ms) - 1) .. '-18446744073709551615'
  end
  redis.call('XSETID', KEYS[1], id, 'ENTRIESADDED', 1, 'MAXDELETEDID', floor)
end
return id
"""

_NOW_MS = """
local function now_ms()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

_HEARTBEAT = (
    _NOW_MS
    + """
local now = now_ms()
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
local keep = ttl * 2 + 60000
if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], keep) end
return now
"""
)

_MEMBERS = (
    _NOW_MS
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%d', now_ms()), '+inf')
"""
)


class RedisBus(Bus):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        maxlen: int = DEFAULT_MAXLEN,
        maxlens: Mapping[str, int] | None = None,
        clock: Clock | None = None,
        timeout_s: float = 2.0,
        max_block_s: float = 10.0,
        write_budget_s: float = 0.5,
        retry_s: float = DEFAULT_RETRY_S,
        outage_clock: Clock | None = None,
    ) -> None:
        """``url``: ``redis://host:port/db``. ``maxlen``: entries kept per topic (at least; ``~``),
        ``maxlens`` per-topic exceptions. ``clock``: membership time (None: Redis' own clock).
        ``timeout_s``: socket timeout. ``write_budget_s``: the retry budget of every call but a
        read. ``retry_s``: while Redis is down, calls but reads are refused at once except one
        single-attempt probe per ``retry_s`` (:mod:`ubot.bus.outage`, on ``outage_clock``)."""
        self.prefix = check_name("prefix", prefix)
        self.maxlen = maxlen
        self.maxlens = dict(maxlens or {})
        if min([maxlen, *self.maxlens.values()]) < 1:
            raise ValueError("maxlen must be at least 1")
        self.clock = clock
        self.timeout_s = timeout_s
        self.max_block_s = max_block_s
        self.write_budget_s = min(write_budget_s, timeout_s)
        self.outage = Outage(f"Redis ({prefix})", retry_s, outage_clock)
        common: dict[str, Any] = dict(
            socket_connect_timeout=timeout_s,
            protocol=2,  # the replies' shapes this module reads, whatever redis-py's default
            retry=Retry(EqualJitterBackoff(), 0),  # no retries inside redis-py: ours see every failure
            client_name=f"ubot-bus.{prefix}",  # CLIENT LIST tells which deployment a connection serves
        )
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout_s, **common)
        self._reader = redis.Redis.from_url(url, socket_timeout=max_block_s + timeout_s, **common)
        self._backoff = EqualJitterBackoff(cap=2.0, base=0.05)
        self._append = self._redis.register_script(_APPEND)
        self._heartbeat = self._redis.register_script(_HEARTBEAT)
        self._members = self._redis.register_script(_MEMBERS)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._connected = False
        self._error: str | None = "not connected yet"

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    # --- topics ----------------------------------------------------------------------------------

    def append(self, topic: str, payload: bytes) -> EntryId:
        maxlen = self.maxlens.get(topic, self.maxlen)
        key = self._key("topic", topic)
        return EntryId.parse(self._call(lambda: self._append(keys=[key], args=[maxlen, payload])))

    def read_raw(self, topic: str, after: EntryId, timeout: float, count: int) -> RawBatch:
        key = self._key("topic", topic)
        deadline = time.monotonic() + timeout
        while True:
            if self._closed.is_set():
                return RawBatch(closed=True)
            try:
                state, found = self._call(lambda: self._peek(key, after, count), deadline)
            except BusClosed:
                return RawBatch(closed=True)
            if after > state.last:
                return RawBatch(missed=True, cursor=state.last)
            missed = state.missed(after)
            if found or missed:
                return RawBatch(found, missed)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return RawBatch()
            block_ms = max(1, int(min(remaining, self.max_block_s) * 1000))
            try:  # wait for an entry, then read again above (with the verdict on missed ones)
                wait = functools.partial(self._reader.xread, {key: str(after)}, count=1, block=block_ms)
                self._call(wait, deadline)
            except BusClosed:
                return RawBatch(closed=True)

    def _peek(
        self, key: str, after: EntryId, count: int
    ) -> tuple[LogState, tuple[tuple[EntryId, bytes], ...]]:
        pipe = self._redis.pipeline(transaction=True)
        pipe.xinfo_stream(key)
        pipe.xread({key: str(after)}, count=count)
        info, read = pipe.execute(raise_on_error=False)
        if isinstance(read, Exception):
            raise read
        entries = read[0][1] if read else []
        found = tuple((EntryId.parse(i), fields.get(FIELD, b"")) for i, fields in entries)
        return _log_state(info), found

    def last_id(self, topic: str) -> EntryId:
        key = self._key("topic", check_name("topic", topic))
        return self._call(lambda: self._state(key)).last

    def _state(self, key: str) -> LogState:
        try:
            info = self._redis.xinfo_stream(key)
        except redis.ResponseError as error:
            info = error
        return _log_state(info)

    # --- latest values ---------------------------------------------------------------------------

    def put(self, key: str, payload: bytes) -> None:
        self._call(lambda: self._redis.set(self._key("latest", key), payload))

    def get(self, key: str) -> bytes | None:
        return self._call(lambda: self._redis.get(self._key("latest", key)))

    # --- membership ------------------------------------------------------------------------------

    def _now_arg(self) -> str:
        return "" if self.clock is None else str(int(self.clock.now() * 1000))

    def heartbeat(self, group: str, member: str, ttl_s: float) -> None:
        key = self._key("group", check_name("group", group))
        if not member:
            raise ValueError("a member needs a name")
        ttl_ms = max(1, int(ttl_s * 1000))
        self._call(lambda: self._heartbeat(keys=[key], args=[self._now_arg(), member, ttl_ms]))

    def leave(self, group: str, member: str) -> None:
        key = self._key("group", check_name("group", group))
        self._call(lambda: self._redis.zrem(key, member))

    def members(self, group: str) -> tuple[str, ...]:
        key = self._key("group", check_name("group", group))
        found = self._call(lambda: self._members(keys=[key], args=[self._now_arg()]))
        return tuple(sorted(m.decode() for m in found))

    # --- health ----------------------------------------------------------------------------------

    def ping(self) -> None:
        self._call(self._redis.ping)

    def health(self) -> BusHealth:
        with self._lock:
            return BusHealth("redis", self._connected, self._error)

    def close(self) -> None:
        """Also wakes readers blocked in ``XREAD BLOCK``: their connections are closed under them."""
        self._closed.set()
        self._set_state(False, "closed")
        for client in (self._redis, self._reader):
            client.connection_pool.disconnect(inuse_connections=True)

    # --- every call goes through here ------------------------------------------------------------

    def _call(self, do: Callable[[], T], deadline: float | None = None) -> T:
        """``do()``, retried on connection failures with backoff until ``deadline`` (monotonic).
        Without a deadline (every call but a read's) it goes through the outage gate: while Redis is
        down it is refused at once (``BusUnavailable``), or tried once as a probe; else retried
        within ``write_budget_s``. Always tried at least once when it goes to the network."""
        if deadline is None:
            if self._closed.is_set():
                raise BusClosed("the bus is closed")
            if not self.outage.allow():
                raise BusUnavailable(f"Redis is down ({self.health().error}); not tried, retried soon")
            deadline = time.monotonic() + (0.0 if self.outage.down else self.write_budget_s)
        try:
            result = self._retry(do, deadline)
        except BusClosed:
            raise
        except BusUnavailable as error:
            self.outage.failed(str(error))
            raise
        self.outage.recovered()
        return result

    def _retry(self, do: Callable[[], T], deadline: float) -> T:
        failures = 0
        while True:
            if self._closed.is_set():
                raise BusClosed("the bus is closed")
            try:
                result = do()
            except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
                if self._closed.is_set():
                    raise BusClosed("the bus is closed") from None
                self._set_state(False, f"{type(error).__name__}: {error}")
                failures += 1
                delay = self._backoff.compute(failures)
                if time.monotonic() + delay > deadline:
                    raise BusUnavailable(f"Redis did not answer: {error}") from error
                if self._closed.wait(delay):
                    raise BusClosed("the bus is closed") from None
                continue
            except Exception:
                if self._closed.is_set():  # closed under a running command: whatever redis-py says
                    raise BusClosed("the bus is closed") from None
                raise
            if not self._closed.is_set():
                self._set_state(True, None)
            return result

    def _set_state(self, connected: bool, error: str | None) -> None:
        with self._lock:
            self._connected, self._error = connected, error


def _log_state(info: Any) -> LogState:
    """``XINFO STREAM``'s answer as a :class:`LogState`; an error (no such stream) is an empty log."""
    if isinstance(info, redis.ResponseError):  # no such stream (yet, or any more)
        return LogState()
    if isinstance(info, Exception):
        raise info
    return LogState(
        length=info["length"],
        entries_added=info["entries-added"],
        first=EntryId.parse(info["recorded-first-entry-id"]),
        last=EntryId.parse(info["last-generated-id"]),
        max_deleted=EntryId.parse(info["max-deleted-entry-id"]),
    )
