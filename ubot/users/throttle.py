"""Failed-login throttling: exponential back-off after repeated failures. Pure; times in epoch ms.

A :class:`Failures` record counts consecutive failures. From the ``threshold``-th failure on, each
failure locks further attempts for ``base_delay`` doubled per failure beyond the threshold, at most
``max_delay`` (30 s, 1 min, 2 min, ... capped at 15 min). Attempts while locked are refused without
being checked, and do not count. The count starts over after ``window`` without a failure (counted
from the end of the last lock, so waiting out a lock does not also reset it).

Who is locked out (``UserManager.login``), so that nobody can lock somebody else out:

* **per (account, address)**: an address's failures on one account lock that address out of that
  account (:data:`PAIR_POLICY`, in memory in a :class:`ThrottleBook`). This is what slows a guesser.
* **per account, only for addresses that have failed on it**: every failure on an account also
  counts in the account's record (kept in the ``user`` row, it survives restarts; for usernames that
  do not exist, in memory, so that they behave exactly like those that do). While that record is
  locked, an address with a recent failure on the account (within the window) waits for it too, but
  an address that has not failed on the account is let through and its password checked. So a
  guesser spread over many addresses gets one guess per address per account lock (at most 15 min),
  while the owner, from an address that has not failed, always logs in with the right password.
* **per address, across accounts** (:data:`ADDRESS_POLICY`): one address guessing many accounts.
  Its threshold is higher, since many people may share one address (NAT, an office).

A success resets the account record and the (account, address) record, never the address's own:
an attacker with an account of their own could otherwise reset it between guesses. Sign-ups are not
logins: a refused sign-up counts nowhere here. The in-memory records are lost at a restart.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

MINUTE_MS = 60_000


@dataclass(frozen=True)
class Policy:
    threshold: int = 5
    window_ms: int = 15 * MINUTE_MS
    base_delay_ms: int = 30_000
    max_delay_ms: int = 15 * MINUTE_MS


#: One account's failures from all addresses; the lock applies only to addresses that failed on it.
ACCOUNT_POLICY = Policy()
#: One address's failures on one account.
PAIR_POLICY = Policy()
#: One address's failures on any account.
ADDRESS_POLICY = Policy(threshold=20)


@dataclass(frozen=True)
class Failures:
    count: int = 0
    last_at: int | None = None  # epoch ms of the last failure
    locked_until: int | None = None  # epoch ms: no attempt before then


def retry_after(failures: Failures, now_ms: int) -> int:
    """Seconds until the next attempt is allowed (0: now), rounded up."""
    if failures.locked_until is None or failures.locked_until <= now_ms:
        return 0
    return -(-(failures.locked_until - now_ms) // 1000)


def _quiet_since(failures: Failures) -> int | None:
    if failures.last_at is None:
        return None
    return max(failures.last_at, failures.locked_until or failures.last_at)


def is_stale(failures: Failures, now_ms: int, policy: Policy) -> bool:
    """Whether the count has started over (``window`` passed without a failure, after any lock)."""
    quiet = _quiet_since(failures)
    return quiet is None or now_ms - quiet >= policy.window_ms


def after_failure(failures: Failures, now_ms: int, policy: Policy) -> Failures:
    """The record after one more failure at ``now_ms``."""
    count = 1 if is_stale(failures, now_ms, policy) else failures.count + 1
    locked_until = None
    if count >= policy.threshold:
        delay = min(policy.base_delay_ms << min(count - policy.threshold, 32), policy.max_delay_ms)
        locked_until = now_ms + delay
    return Failures(count, now_ms, locked_until)


class ThrottleBook:
    """Failure records in memory, by key (a client address, an unknown username). Bounded: past
    ``max_entries`` the stale records go first, then the oldest, down to 90 % (so that the sweep
    runs once per many failures, not on each)."""

    def __init__(self, policy: Policy, max_entries: int = 10_000) -> None:
        self.policy = policy
        self.max_entries = max_entries
        self._records: dict[Hashable, Failures] = {}

    def __len__(self) -> int:
        return len(self._records)

    def retry_after(self, key: Hashable, now_ms: int) -> int:
        record = self._records.get(key)
        return 0 if record is None else retry_after(record, now_ms)

    def failed(self, key: Hashable, now_ms: int) -> int:
        """Record a failure; the seconds until the next attempt is allowed."""
        record = after_failure(self._records.pop(key, Failures()), now_ms, self.policy)
        self._records[key] = record  # re-inserted: the dict stays ordered by last failure
        if len(self._records) > self.max_entries:
            self._prune(now_ms)
        return retry_after(record, now_ms)

    def has_failed(self, key: Hashable, now_ms: int) -> bool:
        """Whether ``key`` failed recently (its count has not started over)."""
        record = self._records.get(key)
        return record is not None and not is_stale(record, now_ms, self.policy)

    def forget(self, key: Hashable) -> None:
        self._records.pop(key, None)

    def _prune(self, now_ms: int) -> None:
        for key in [k for k, r in self._records.items() if is_stale(r, now_ms, self.policy)]:
            del self._records[key]
        while len(self._records) > self.max_entries * 9 // 10:
            del self._records[next(iter(self._records))]
