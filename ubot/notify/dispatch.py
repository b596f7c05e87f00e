"""Sending, beside the Notifier's mailbox: per channel, one scheduler thread over paced
per-destination queues (:mod:`ubot.notify.pacing`), and a few sender threads.

The :class:`Dispatcher` takes jobs (:meth:`Dispatcher.submit`) and reports every attempt's end through
``on_attempt`` (called in a sender thread); what to write and whether to retry is decided by the
Notifier (:mod:`ubot.notify.outbox`). A slow or failing provider, or destination, thus delays neither
the other channels nor the mailbox. Time comes from the injected clock only: the scheduler is the only
thread that sleeps on it.

Bounds, so that no user delays the others for long: each attempt ends by its channel's deadline
(:mod:`ubot.notify.deadline`, enforced by the channel's connections); one user has at most
``sends_per_user`` sends in flight on a channel (:class:`~ubot.notify.pacing.PacedQueues`); and
:meth:`Dispatcher.stop` cuts the attempts in flight (each lane's :class:`~ubot.notify.deadline.Scope`)
instead of waiting for their receivers. An attempt the stop cut short is not reported: its delivery
stays as it was in the database (pending), for the next start.

Several notifier processes keep a paced channel's per-destination interval between them through
``pace`` (``AlertStore.pace``, a row per destination in the database): a sender takes the
destination's next slot there just before its attempt, and waits for it when another process holds it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, replace

from ubot import metrics
from ubot.clocks import Clock
from ubot.notify.channel import RETRY, Channel, Message, Outcome
from ubot.notify.deadline import Scope
from ubot.notify.outbox import Job
from ubot.notify.pacing import PacedQueues

log = logging.getLogger(__name__)

#: Sender threads of each channel.
SENDERS_PER_CHANNEL = 4

#: ``pace(channel, destination, interval_s) -> seconds to wait`` (0: the slot is taken now), shared
#: by every notifier process (``AlertStore.pace``).
Pace = Callable[[str, str, float], float]


@dataclass(frozen=True)
class Attempt:
    """A sender thread's result: one attempt at ``job`` ended with ``outcome`` at ``finished_ms``."""

    job: Job
    outcome: Outcome
    finished_ms: int


class Dispatcher:
    """One :class:`_Lane` per channel. Every attempt that ends is queued for :meth:`ended` and
    ``nudge`` is called (in the sender thread) so that its owner comes to take it. After :meth:`stop`,
    submissions are ignored (they stay pending in the database)."""

    def __init__(
        self,
        channels: Mapping[str, Channel],
        clock: Clock,
        nudge: Callable[[], None],
        senders_per_channel: int = SENDERS_PER_CHANNEL,
        sends_per_user: int | None = None,
        prepare: Callable[[Job], Message] | None = None,
        sender_done: Callable[[], None] | None = None,
        pace: Pace | None = None,
    ) -> None:
        """``prepare(job)``: the message to send, made in the sender thread just before each attempt
        (the webhook secret is read there: :func:`~ubot.notify.outbox.signed`); ``sender_done()`` is
        called by each sender thread as it ends (to close its database connection); ``pace``: the
        pacing shared with other notifier processes (None: this process alone sends)."""
        self.nudge = nudge
        # Results cross over through this queue rather than as messages, so that the owner can still
        # take those that end while it stops the senders.
        self._ended: queue.SimpleQueue[Attempt] = queue.SimpleQueue()
        self.lanes = {
            name: _Lane(
                channel,
                clock,
                self._attempt_ended,
                senders_per_channel,
                sends_per_user,
                prepare or _as_is,
                sender_done or _nothing,
                pace,
            )
            for name, channel in channels.items()
        }

    def _attempt_ended(self, attempt: Attempt) -> None:
        self._ended.put(attempt)
        self.nudge()

    def ended(self) -> Iterator[Attempt]:
        """The attempts that ended since the last call, one at a time (what is not taken stays)."""
        while True:
            try:
                yield self._ended.get_nowait()
            except queue.Empty:
                return

    def has(self, channel: str) -> bool:
        return channel in self.lanes

    def start(self) -> None:
        for lane in self.lanes.values():
            lane.start()

    def submit(self, job: Job) -> None:
        self.lanes[job.message.channel].submit(job)

    def release(self, delivery_ids: Collection[int], due_ms: int) -> int:
        """Bring these deliveries, waiting to be due later, forward to ``due_ms`` (their hold ended
        early); how many were waiting here."""
        return sum(lane.release(delivery_ids, due_ms) for lane in self.lanes.values())

    def stop(self, timeout: float) -> None:
        """Stop every lane: no new send starts, the attempts in flight are cut (their sockets shut
        down: no receiver is waited for); wait up to ``timeout`` seconds in all for the threads."""
        deadline = time.monotonic() + timeout
        for lane in self.lanes.values():
            lane.halt()
        for lane in self.lanes.values():
            lane.join(deadline)


def _user_of(job: Job) -> int:
    return job.user_id


def _as_is(job: Job) -> Message:
    return job.message


def _nothing() -> None:
    pass


class _Lane:
    """One channel: a scheduler thread over paced per-destination queues, and sender threads.

    The scheduler is the only thread that sleeps on the clock (until the next delivery is due or a
    destination's pace allows it); anything that changes the queues interrupts that sleep.
    """

    def __init__(
        self,
        channel: Channel,
        clock: Clock,
        on_attempt: Callable[[Attempt], None],
        senders: int,
        sends_per_user: int | None = None,
        prepare: Callable[[Job], Message] = _as_is,
        sender_done: Callable[[], None] = _nothing,
        pace: Pace | None = None,
    ) -> None:
        self.channel = channel
        self.pace = pace if channel.min_interval_s > 0 else None
        self._halted = threading.Event()
        self.prepare = prepare
        self.sender_done = sender_done
        self.clock = clock
        self.on_attempt = on_attempt
        self.queues: PacedQueues[Job] = PacedQueues(channel.min_interval_s, _user_of, sends_per_user)
        self.scope = Scope()  # the attempts of this lane's senders: cut at stop
        self._lock = threading.Lock()
        self._interrupt = threading.Event()
        self._stopping = False
        self._free = senders
        self._work: queue.SimpleQueue[tuple[str, Job] | None] = queue.SimpleQueue()
        name = f"ubot-notify-{channel.name}"
        self._scheduler = threading.Thread(target=self._schedule, name=name, daemon=True)
        self._senders = [
            threading.Thread(target=self._send_loop, name=f"{name}-{i}", daemon=True) for i in range(senders)
        ]

    def start(self) -> None:
        self._scheduler.start()
        for thread in self._senders:
            thread.start()

    def submit(self, job: Job) -> None:
        with self._lock:
            if self._stopping:
                return  # stays pending in the database
            self.queues.push(self._destination(job), job, job.due_ms / 1000)
        self._poke()

    def release(self, delivery_ids: Collection[int], due_ms: int) -> int:
        def moved(job: Job) -> Job | None:
            return replace(job, due_ms=due_ms) if job.message.delivery_id in delivery_ids else None

        with self._lock:
            count = self.queues.reschedule(moved, due_ms / 1000)
        if count:
            self._poke()
        return count

    def halt(self) -> None:
        with self._lock:
            self._stopping = True
        self._halted.set()
        self._poke()
        self.scope.cut()
        for _ in self._senders:
            self._work.put(None)  # behind any send handed over but not begun: that one stays pending

    def join(self, deadline: float) -> None:
        """Wait for the threads until ``deadline`` (``time.monotonic()``); a thread still stuck in
        a provider's request is left behind (a daemon thread) and reported."""
        for thread in (self._scheduler, *self._senders):
            if thread.ident is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.error("notifier: %s did not stop in time", thread.name)

    def _poke(self) -> None:
        self._interrupt.set()
        self.clock.wake()

    def _destination(self, job: Job) -> str:
        try:
            return self.channel.destination(job.message)
        except Exception:
            log.exception("notifier: %s channel: destination() failed", self.channel.name)
            return job.message.target

    # -- scheduler thread ----------------------------------------------------------------------

    def _schedule(self) -> None:
        while True:
            with self._lock:
                self._interrupt.clear()
                if self._stopping:
                    return
                now = self.clock.now()
                while self._free and (taken := self.queues.take(now)) is not None:
                    self._free -= 1
                    self._work.put(taken)
                wake = self.queues.next_time() if self._free else None
            if wake is None:
                self._interrupt.wait()  # until a submission, a finished send, or halt
            elif wake > now:
                self.clock.sleep_until(wake, self._interrupt)

    # -- sender threads ----------------------------------------------------------------------

    def _send_loop(self) -> None:
        try:
            self._sending()
        finally:
            self.sender_done()

    def _sending(self) -> None:
        with self.scope.entered():
            while (item := self._work.get()) is not None:
                destination, job = item
                with self._lock:
                    stopping = self._stopping
                if stopping or not self._paced(destination):
                    continue  # not begun: stays pending in the database
                started = self.clock.now()
                outcome = self._send(job)
                finished = self.clock.now()
                metrics.attempt_ended(self.channel.name, finished - started)
                pause = outcome.retry_after_s if outcome.status == RETRY else None
                with self._lock:
                    self.queues.done(destination, finished, pause)
                    self._free += 1
                    stopping = self._stopping
                self._poke()
                if stopping and outcome.status == RETRY:
                    continue  # cut short by the stop (or failing as it came): not counted, stays pending
                self.on_attempt(Attempt(job, outcome, round(finished * 1000)))

    def _paced(self, destination: str) -> bool:
        """Wait for ``destination``'s slot shared with the other notifier processes, if any; False
        when the lane is halted meanwhile. A database error lets the send go (this process's own
        pacing still holds)."""
        while self.pace is not None:
            try:
                wait = self.pace(self.channel.name, destination, self.channel.min_interval_s)
            except Exception as error:
                log.warning("notifier: shared pacing unavailable (%s)", type(error).__name__)
                return True
            if wait <= 0:
                return True
            if not self.clock.sleep_until(self.clock.now() + wait, self._halted):
                return False
        return True

    def _send(self, job: Job) -> Outcome:
        try:
            message = self.prepare(job)
        except Exception as error:  # the database is down: try again later
            log.warning(
                "notifier: %s delivery %d: preparing it failed (%s)",
                self.channel.name,
                job.message.delivery_id,
                type(error).__name__,
            )
            return Outcome(
                RETRY, f"the delivery could not be prepared ({type(error).__name__}); retried later"
            )
        try:
            return self.channel.send(message)
        except Exception as error:  # a channel must not raise; if one does, it is a bug: retry later
            log.exception(
                "notifier: %s channel raised on delivery %d", self.channel.name, job.message.delivery_id
            )
            return Outcome(
                RETRY, f"internal error in the {self.channel.name} channel ({type(error).__name__})"
            )
