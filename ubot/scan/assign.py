"""Which scanner process scans which strategy (``--role scanner``): plain logic, no threads, no I/O.

Scanners have no shard numbers. Each one heartbeats into the bus's membership group ``scanners``;
the engine names the live members in every :class:`~ubot.bus.TickReady` it publishes (as it saw
them then), and every scanner splits *that tick's* strategies over *that list* by rendezvous
hashing (:func:`owner`: the member with the highest hash of (member, strategy id)). So a tick's
assignment is fixed by the view in its message, the same in every scanner: no strategy is scanned by
two scanners for one tick, and none is left out while every listed member is alive. A scanner not in
the list (it has just started) owns nothing for that tick.

When a scanner dies, its heartbeat expires (``ttl``, one interval) and the engine's next ticks list
it no more: its strategies go to the others, each to one (rendezvous hashing moves only the dead
member's share), within 2 ticks. The firing state lives in the database (``alert_state``): the new
owner reads it when the strategy comes to it, so a crossing or a cooldown carries on.

Each strategy's **scan mark** (``scan_mark``: the last snapshot whose scan of it was written, moved
in the transaction of that scan's alerts and states) closes the two gaps a handover leaves:

* *nothing skipped*: a strategy that comes to this scanner (:attr:`ShareChange.gained`) is first
  scanned for every snapshot stored after its mark, oldest first, from the firing state its previous
  owner wrote (:func:`passes`); so the snapshots between a scanner's death and its share's takeover
  fire as they would have, once. A scanner that fell behind (a tick replaced while a scan ran) scans
  the snapshot it skipped the same way, for its whole share. At most ``MAX_CATCH_UP`` snapshots.
* *nothing twice*: a scan's outcome is written only for the strategies whose mark it moves
  (``AlertStore.record``: ``INSERT ... ON CONFLICT DO UPDATE ... WHERE mark < snapshot``, under the
  row's lock on PostgreSQL). Two scanners that both scan a strategy for one snapshot (its previous
  owner slow to write while the new one catches up) write it once: the first to commit; the other's
  alerts and states for it are dropped, logged.

:class:`Shares` keeps every user's enabled strategies and answers, per tick's view, which are this
scanner's; :meth:`Shares.view` says, per user whose share changed, the strategies owned now and the
ones that *moved* to another scanner (their saved state must be kept, not forgotten).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ubot.scan.spec import StrategySpec, UserStrategies


def score(member: str, strategy_id: int) -> int:
    """The rendezvous weight of ``member`` for ``strategy_id`` (stable across processes and runs)."""
    digest = hashlib.blake2b(f"{member}\0{strategy_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(strategy_id: int, members: Sequence[str]) -> str | None:
    """The member that scans ``strategy_id`` when ``members`` are the live scanners (None: none)."""
    best: str | None = None
    best_score = -1
    for member in members:
        weight = score(member, strategy_id)
        if weight > best_score or (weight == best_score and best is not None and member < best):
            best, best_score = member, weight
    return best


@dataclass(frozen=True)
class ShareChange:
    """One user's strategies that this scanner scans from now on, and those that moved away."""

    user_id: int
    specs: tuple[StrategySpec, ...]
    moved: tuple[int, ...] = ()
    gained: tuple[int, ...] = ()  # owned now and not before: scanned from their scan marks on


class Shares:
    def __init__(self, me: str) -> None:
        self.me = me
        self.members: tuple[str, ...] = ()
        self.users: dict[int, tuple[StrategySpec, ...]] = {}
        self.owned: dict[int, frozenset[int]] = {}  # per user, the ids this scanner scans

    def _mine(self, specs: Iterable[StrategySpec]) -> tuple[StrategySpec, ...]:
        if self.me not in self.members:
            return ()
        return tuple(s for s in specs if owner(s.id, self.members) == self.me)

    def __len__(self) -> int:
        """How many strategies this scanner owns."""
        return sum(len(ids) for ids in self.owned.values())

    def set_all(self, users: Iterable[UserStrategies]) -> list[UserStrategies]:
        """Every user's strategies (at start); this scanner's share of them."""
        self.users = {u.user_id: tuple(u.specs) for u in users}
        return [UserStrategies(user_id, self._own(user_id)) for user_id in self.users]

    def set_user(self, user_id: int, specs: Iterable[StrategySpec]) -> tuple[StrategySpec, ...]:
        """A user's strategies changed: this scanner's share of them now."""
        self.users[user_id] = tuple(specs)
        return self._own(user_id)

    def _own(self, user_id: int) -> tuple[StrategySpec, ...]:
        mine = self._mine(self.users[user_id])
        if mine:
            self.owned[user_id] = frozenset(s.id for s in mine)
        else:
            self.owned.pop(user_id, None)
        if not self.users[user_id]:
            del self.users[user_id]
        return mine

    def view(self, members: Iterable[str]) -> list[ShareChange]:
        """The live scanners of a tick: the users whose share changed, each with this scanner's
        strategies now and the ids that moved to another scanner (still enabled: keep their state)."""
        members = tuple(sorted(set(members)))
        if members == self.members:
            return []
        self.members = members
        changes = []
        for user_id in list(self.users):
            before = self.owned.get(user_id, frozenset())
            mine = self._own(user_id)
            now = frozenset(s.id for s in mine)
            if now != before:
                changes.append(
                    ShareChange(user_id, mine, tuple(sorted(before - now)), tuple(sorted(now - before)))
                )
        return changes


def handed_over(previous: Sequence[str], current: Sequence[str], me: str) -> tuple[str, ...]:
    """The scanners whose writes this one waits for before a tick whose view changed: those of the
    previous tick's view still alive in this one (they scanned the previous tick; a strategy that
    moves from one of them continues from the state it wrote). A member no longer listed is dead or
    leaving: nothing to wait for."""
    if tuple(previous) == tuple(current):
        return ()
    return tuple(m for m in previous if m in set(current) and m != me)


@dataclass(frozen=True)
class Pass:
    """One scan of stored snapshot ``snapshot_id`` for part of this scanner's share: ``only`` those
    strategies (None: all of them), none of ``skip``."""

    snapshot_id: int
    only: frozenset[int] | None = None
    skip: frozenset[int] = frozenset()


def passes(
    snapshot_id: int,
    marks: Mapping[int, int],
    skipped: Iterable[int] = (),
    stored: Iterable[int] = (),
    limit: int | None = None,
) -> list[Pass]:
    """The scans that bring this scanner's share up to ``snapshot_id`` (the tick to scan), oldest
    first, that tick last:

    * ``marks``: the strategies that came to this scanner, each with its scan mark (the last
      snapshot scanned for it): scanned in every one of ``stored`` (the snapshots stored after the
      oldest mark) after its mark, and never in one at or before it;
    * ``skipped``: snapshots this scanner was not told of or did not scan (a tick replaced while a
      scan ran): scanned for its whole share (but a strategy of ``marks`` not before its mark).

    ``limit``: at most that many snapshots before ``snapshot_id`` (the newest)."""
    skipped = set(skipped)
    before = sorted({i for i in (*skipped, *stored) if i < snapshot_id})
    if limit is not None:
        before = before[-limit:] if limit else []
    found = []
    for at in [*before, snapshot_id]:
        done = frozenset(i for i, mark in marks.items() if mark >= at)
        if at in skipped or at == snapshot_id:
            found.append(Pass(at, None, done))
        elif behind := frozenset(marks).difference(done):
            found.append(Pass(at, behind))
    return found
