"""Entry ids and the one rule that says whether a reader missed entries.

An entry id is Redis Streams' ``<milliseconds>-<sequence>``: the publisher's clock in epoch
milliseconds, then a counter for entries within the same millisecond. Ids of a topic increase
strictly; when the clock stands still or steps back, the id keeps the newest millisecond and
increments the sequence (Redis' rule, which the in-process log follows too). Ids are what a reader
resumes after, and the gateway's SSE ``Last-Event-ID``.

A log keeps its newest entries only (``MAXLEN``). :class:`LogState` describes a log the way Redis'
``XINFO STREAM`` does, and :meth:`LogState.missed` decides, in one place for both implementations,
whether a reader resuming after an id has lost entries:

* an id above the newest the log ever gave is unknown (from a log that is gone): missed, and the
  reader goes on from the log's newest id;
* ``max_deleted``: when a log is created, its first entry's predecessor is recorded there, so an id
  from before the log existed (an earlier run of the in-process bus, or a Redis that restarted and
  lost its streams) counts as missed;
* trimming removes the oldest entries: a reader behind the oldest entry held missed some. The log
  does not remember which id was trimmed last, so a reader whose very last entry was just trimmed
  is told it missed entries too (conservative: it catches up from the database for nothing);
* a reader after ``0-0`` ("from the beginning") missed entries only if some were trimmed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

MAX_SEQ = 2**64 - 1
_ID = re.compile(r"(\d{1,20})-(\d{1,20})")


class EntryId(NamedTuple):
    """``ms-seq``; tuples compare as Redis orders ids."""

    ms: int
    seq: int

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"

    @classmethod
    def parse(cls, text: str | bytes) -> EntryId:
        """``"1733350000000-3"`` -> ``EntryId(1733350000000, 3)``; ``ValueError`` naming the text
        otherwise (a client's ``Last-Event-ID`` goes through here)."""
        if isinstance(text, bytes):
            text = text.decode("ascii", "replace")
        match = _ID.fullmatch(text)
        if match is None:
            raise ValueError(f"{text[:40]!r} is not an entry id (expected <milliseconds>-<sequence>)")
        ms, seq = int(match[1]), int(match[2])
        if ms > MAX_SEQ or seq > MAX_SEQ:
            raise ValueError(f"{text[:40]!r} is not an entry id (a part is above 2**64 - 1)")
        return cls(ms, seq)

    def successor(self, now_ms: int) -> EntryId:
        """The id of the next entry appended at ``now_ms`` after this one."""
        if now_ms > self.ms:
            return EntryId(now_ms, 0)
        return EntryId(self.ms, self.seq + 1)

    def predecessor(self) -> EntryId:
        """The highest id below this one (``0-0`` stays ``0-0``)."""
        if self.seq > 0:
            return EntryId(self.ms, self.seq - 1)
        if self.ms > 0:
            return EntryId(self.ms - 1, MAX_SEQ)
        return self


ZERO = EntryId(0, 0)


@dataclass(frozen=True)
class LogState:
    """What a topic's log knows about itself (Redis: ``XINFO STREAM``)."""

    length: int = 0  # entries held now
    entries_added: int = 0  # entries ever appended since the log was created
    first: EntryId = ZERO  # the oldest id held (0-0: none)
    last: EntryId = ZERO  # the newest id ever given (even if trimmed since)
    max_deleted: EntryId = ZERO  # the log's creation floor (see the module docstring)

    def missed(self, after: EntryId) -> bool:
        """Whether a reader resuming after ``after`` lost entries it can no longer read."""
        if after > self.last:
            return True
        trimmed = self.entries_added > self.length
        if after == ZERO:
            return trimmed
        if after < self.max_deleted:
            return True
        return trimmed and after < self.first.predecessor()
