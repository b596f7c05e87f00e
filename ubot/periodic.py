"""A thread that calls a function every period of the injected clock, until closed.

Plain thread machinery for the actors that need a beat of their own (the Notifier's claims poll),
so that none of it lives in an actor's file. The waits are the clock's (``sleep_until``): a test on
a :class:`~ubot.clocks.FakeClock` steps time instead of sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ubot.clocks import Clock


class Periodic:
    """Call ``call()`` every ``period_s`` seconds of ``clock`` in a daemon thread named ``name``;
    ``call`` returning ``False`` ends the loop (e.g. its actor is gone). ``on_exit`` runs in the
    thread when it ends (e.g. closing its database connection)."""

    def __init__(
        self,
        clock: Clock,
        period_s: float,
        call: Callable[[], bool | None],
        name: str,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.clock = clock
        self.period_s = period_s
        self._call = call
        self._on_exit = on_exit
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Periodic:
        self.thread.start()
        return self

    def close(self, join_s: float | None = None) -> None:
        """Stop (idempotent); wait up to ``join_s`` for the thread when given."""
        self._stop.set()
        self.clock.wake()
        if join_s is not None and self.thread.is_alive():
            self.thread.join(join_s)

    def _run(self) -> None:
        try:
            while self.clock.sleep_until(self.clock.now() + self.period_s, self._stop):
                if self._call() is False:
                    return
        finally:
            if self._on_exit is not None:
                self._on_exit()
