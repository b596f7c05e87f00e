"""Per-role heartbeats, for ``/health``: each engine (active or standby), scanner and notifier process
says it is alive (the bus's membership groups ``engines``, ``scanners`` and ``notifiers``, with a TTL) and what it is doing (a small
:class:`RoleBeat` document under ``beat.<group>.<member>``, a latest value on the bus). A gateway's
``/health`` lists the live members of each group with their documents (:func:`roles_health`).

The ``scanners`` group is also what splits the strategies (``scan/assign.py``): the engine names its
live members in every tick. A member's TTL is one interval (at least 1 s), renewed four times per
TTL: a dead scanner leaves the engine's list within an interval, so its share moves within 2 ticks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ubot.bus import SCANNERS, Bus, BusUnavailable
from ubot.clocks import Clock, SystemClock
from ubot.periodic import Periodic

log = logging.getLogger(__name__)

NOTIFIERS = "notifiers"  # the membership group of the notifier role
ENGINES = "engines"  # the membership group of the engine role: the active one and those standing by
GROUPS = {"engine": ENGINES, "scanner": SCANNERS, "notifier": NOTIFIERS}


class RoleBeat(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a role process says of itself (``None``: does not apply to this role)."""

    role: Literal["engine", "scanner", "notifier"]
    member: str
    at_ms: Annotated[int | None, Meta(description="when this beat was made (null: no beat read yet)")] = None
    state: Annotated[
        Literal["active", "standby"] | None,
        Meta(description="engine: active (it holds the engine lock) or standing by"),
    ] = None
    last_tick: Annotated[int | None, Meta(description="scanner: the engine's tick last received")] = None
    snapshot_id: Annotated[int | None, Meta(description="scanner: that tick's snapshot")] = None
    strategies: Annotated[int | None, Meta(description="scanner: strategies it owns now")] = None
    claims: Annotated[int | None, Meta(description="notifier: deliveries it holds a live claim on")] = None
    lag_ms: Annotated[
        int | None, Meta(description="scanner: how far behind the newest tick on the bus (entry ids, ms)")
    ] = None
    scans: Annotated[int | None, Meta(description="scanner: scans finished since it started")] = None
    scan_ms: Annotated[
        float | None,
        Meta(
            description="scanner: its last scan's wall time, in ms (reading the snapshot and building the frame included)"
        ),
    ] = None


class RolesHealth(msgspec.Struct, frozen=True):
    """``/health``'s ``roles`` (``--role gateway``): the live members of each group."""

    engines: list[RoleBeat]
    scanners: list[RoleBeat]
    notifiers: list[RoleBeat]


def member_name(role: str) -> str:
    """This process's name in its group: ``<role>-<host>-<pid>``, as the bus's names allow."""
    host = re.sub(r"[^a-z0-9_.-]+", "-", socket.gethostname().lower())[:32].strip("-") or "host"
    return f"{role}-{host}-{os.getpid()}"


def beat_key(group: str, member: str) -> str:
    return f"beat.{group}.{member}"[:64]


def ttl_s(interval_s: float) -> float:
    """A member's TTL: one interval, at least 1 s (back-to-back ticks, or a shorter interval)."""
    return max(1.0, interval_s)


_BEAT = msgspec.json.Decoder(RoleBeat)


class Heartbeat:
    """A thread that renews this process's membership and its :class:`RoleBeat` every ``ttl / 4``
    (on the injected clock); on :meth:`stop` it leaves the group at once."""

    def __init__(
        self,
        bus: Bus,
        role: str,
        member: str,
        ttl: float,
        figures: Callable[[], dict[str, Any]],
        clock: Clock | None = None,
    ) -> None:
        self.bus = bus
        self.role = role
        self.group = GROUPS[role]
        self.member = member
        self.ttl = ttl
        self.figures = figures
        self.clock = clock or SystemClock()
        self.failing = False  # the last beat failed on the bus (said once per outage)
        self._beats = Periodic(self.clock, ttl / 4, self.beat, f"ubot-heartbeat-{role}")

    def start(self) -> Heartbeat:
        self.beat()
        self._beats.start()
        return self

    def beat(self) -> None:
        """One heartbeat: the figures first (a process that cannot say what it does, its Scanner
        dead, renews nothing: its membership ends with its TTL and its share moves), then its
        membership (the engine's next tick may count this process), then the document. A bus that
        is down is logged once per outage; the next beat tries again."""
        try:
            doc = RoleBeat(self.role, self.member, round(self.clock.now() * 1000), **self.figures())
            self.bus.heartbeat(self.group, self.member, self.ttl)
            self.bus.put(beat_key(self.group, self.member), msgspec.json.encode(doc))
        except BusUnavailable as exc:
            if not self.failing:
                log.warning(
                    "%s: heartbeat failed (%s); trying again every %g s", self.role, exc, self.ttl / 4
                )
            self.failing = True
            return
        except Exception:
            log.exception("%s: heartbeat failed", self.role)
            return
        if self.failing:
            log.info("%s: heartbeat renewed", self.role)
        self.failing = False

    def stop(self) -> None:
        self._beats.close(join_s=5)
        with contextlib.suppress(BusUnavailable):  # else its TTL ends it
            self.bus.leave(self.group, self.member)


def roles_health(bus: Bus) -> RolesHealth:
    """Per group, the live members' latest documents (a member without one yet: its name only)."""
    found: dict[str, list[RoleBeat]] = {}
    for role, group in GROUPS.items():
        docs = []
        for member in bus.members(group):
            raw = bus.get(beat_key(group, member))
            try:
                docs.append(_BEAT.decode(raw) if raw else RoleBeat(role, member))
            except msgspec.DecodeError:
                docs.append(RoleBeat(role, member))
        found[group] = docs
    return RolesHealth(engines=found[ENGINES], scanners=found[SCANNERS], notifiers=found[NOTIFIERS])
