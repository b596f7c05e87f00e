"""Notifier actor: owns the alert tables; writes every alert before anything is sent, then delivers.

Mailbox (one message at a time, in this actor's thread and database connection):

- ``ScanOutcome`` (``tell``, from the Scanner workers): the alerts, their deliveries and the state
  changes are written in one transaction (``AlertStore.record``: the outbox); then one log line per
  alert, the ``"alert"`` event to the stream (``publish``), and the deliveries go to the senders. The
  log line, the row and the event are the built-in channel: an alert without deliveries is
  complete once written.
- ``GetAlertState`` and ``GetAlerts`` (``ask``): answered after every write queued before them.
- The senders' results, written here too (the decisions are ``ubot/notify/outbox.py``).

Sending happens beside the mailbox, in a :class:`Dispatcher`: per channel, one scheduler thread
keeps that channel's deliveries in per-destination paced queues (``ubot/notify/pacing.py``) and
hands those that are due to a few sender threads. A slow or failing provider, or destination, thus
delays neither the other channels nor the mailbox. Time comes from the injected clock only.

On start, every delivery not yet sent is resumed from the database; on stop, the senders finish the
request they are in, and whatever was not sent stays pending in the database for the next start.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pykka

from ubot.clocks import Clock
from ubot.models.alerts import AlertStore, WrittenAlert
from ubot.models.db import close_connection
from ubot.notify.channel import RETRY, SENT, Channel, Outcome
from ubot.notify.messages import (
    AlertState,
    ForgetState,
    GetAlerts,
    GetAlertState,
    GetScanWatermark,
    Scanned,
    ScanOutcome,
)
from ubot.notify.outbox import (
    Decision,
    Job,
    RetryPolicy,
    alert_document,
    decide,
    describe,
    hold_until,
    jobs_of,
    unconfigured,
)
from ubot.notify.pacing import PacedQueues

log = logging.getLogger(__name__)

#: ``publish(event, data, user_id)``: how an alert reaches the stream of its owner.
Publish = Callable[[str, Mapping[str, Any], int | None], None]
#: ``on_delivery(delivery_id, status)`` after a delivery's new state is written (sent/retry/failed).
OnDelivery = Callable[[int, str], None]
STOP_TIMEOUT_S = 30.0
#: ScanOutcomes kept while the database refuses writes (about an hour of one-minute ticks x 10 workers).
MAX_UNWRITTEN = 600


@dataclass(frozen=True)
class Attempt:
    """A sender thread's result: one attempt at ``job`` ended with ``outcome`` at ``finished_ms``."""

    job: Job
    outcome: Outcome
    finished_ms: int


class _AttemptsWaiting:
    """Nudge: attempts are waiting in the actor's result queue."""


class Notifier(pykka.ThreadingActor):
    def __init__(
        self,
        store: AlertStore,
        channels: Mapping[str, Channel],
        clock: Clock,
        *,
        max_attempts: int = 8,
        backoff_s: float = 5.0,
        backoff_max_s: float = 900.0,
        publish: Publish | None = None,
        on_delivery: OnDelivery | None = None,
        senders_per_channel: int = 4,
    ) -> None:
        super().__init__()
        self.store = store
        self.clock = clock
        self.policy = RetryPolicy(max_attempts, backoff_s, backoff_max_s)
        self.publish = publish
        self.on_delivery = on_delivery
        # Results cross over through this queue (plus a nudge in the mailbox) rather than as
        # messages, so that on_stop can still write those that arrive while it stops the senders.
        self._attempts: queue.SimpleQueue[Attempt] = queue.SimpleQueue()
        #: ScanOutcomes whose write failed (the database is down), oldest first: written before any newer.
        self.unwritten: collections.deque[ScanOutcome] = collections.deque()
        self.unwritten_failures = 0
        self.watermark_waiting: int | None = None
        self.dispatcher = Dispatcher(channels, clock, self._attempt_ended, senders_per_channel)

    # -- lifecycle ----------------------------------------------------------------------------

    def on_start(self) -> None:
        resumed = self.store.pending()
        self.dispatcher.start()
        try:
            for written in resumed:
                self._dispatch(written)
        except Exception:  # pykka calls no on_failure for on_start: stop the threads here
            self.dispatcher.stop(STOP_TIMEOUT_S)
            raise
        count = sum(len(w.deliveries) for w in resumed)
        if count:
            log.info("notifier: resuming %d unsent delivery(ies) of %d alert(s)", count, len(resumed))

    def on_stop(self) -> None:
        self._flush()
        if self.unwritten:
            log.error(
                "notifier: stopping with %d scan outcome(s) not written: their alerts are lost",
                len(self.unwritten),
            )
        self.dispatcher.stop(STOP_TIMEOUT_S)
        self._write_attempts()  # those that ended while stopping: written, not resubmitted
        close_connection()

    def on_failure(self, *exc_info: object) -> None:
        """pykka stops a failed actor without calling on_stop: the threads must stop too."""
        self.dispatcher.stop(STOP_TIMEOUT_S)
        close_connection()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ScanOutcome):
            self.unwritten.append(message)
            self._flush()
        elif isinstance(message, _AttemptsWaiting):
            try:
                self._write_attempts()
            except Exception:  # what was not written stays pending: resumed at the next start
                log.exception("notifier: writing a delivery's state failed")
        elif isinstance(message, Scanned):
            self._flush()
            if self.unwritten:  # written after the outcomes it covers, or not at all
                self.watermark_waiting = max(self.watermark_waiting or 0, message.snapshot_id)
            else:
                self._set_watermark(message.snapshot_id)
        elif isinstance(message, GetScanWatermark):
            self._flush()
            return self.store.scan_watermark()
        elif isinstance(message, ForgetState):
            try:
                self.store.forget_states(message.strategy_ids)
            except Exception:
                log.exception("notifier: forgetting the state of strategies %s failed", message.strategy_ids)
        elif isinstance(message, GetAlertState):
            self._flush()
            return self._states(message.strategy_ids)
        elif isinstance(message, GetAlerts):
            m = message
            return self.store.alerts(m.user_id, m.since_ms, m.strategy_id, m.limit, m.before)
        else:
            raise TypeError(f"notifier: unexpected message {type(message).__name__}")
        return None

    # -- alerts ------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write the outcomes not written yet, oldest first; stop at the first that fails (the database
        is down) and try again with the next message. In order, so a newer state never loses to an
        older one; bounded, so a long outage cannot exhaust memory."""
        while self.unwritten:
            outcome = self.unwritten[0]
            try:
                written = self.store.record(outcome, self._now_ms(), hold_until)
            except Exception:
                if len(self.unwritten) == 1 or self.unwritten_failures == 0:
                    log.exception(
                        "notifier: writing %d alert(s) of worker %d, tick %d failed; kept to try again "
                        "(%d outcome(s) waiting)",
                        len(outcome.alerts),
                        outcome.worker,
                        outcome.tick,
                        len(self.unwritten),
                    )
                self.unwritten_failures += 1
                while len(self.unwritten) > MAX_UNWRITTEN:
                    lost = self.unwritten.popleft()
                    log.error(
                        "notifier: %d alert(s) of tick %d dropped: the database has refused writes for too long",
                        len(lost.alerts),
                        lost.tick,
                    )
                return
            self.unwritten.popleft()
            if not self.unwritten and self.watermark_waiting is not None:
                waiting, self.watermark_waiting = self.watermark_waiting, None
                self._set_watermark(waiting)
            if self.unwritten_failures:
                log.info("notifier: writing works again after %d failure(s)", self.unwritten_failures)
                self.unwritten_failures = 0
            for w in written:
                log.info("%s", describe(w.id, w.alert))
            for w in written:
                self._publish(w)
                self._dispatch(w)

    def _set_watermark(self, snapshot_id: int) -> None:
        try:
            self.store.set_scan_watermark(snapshot_id)
        except Exception:  # the next scan's moves it; a crash before then rescans a little more
            log.exception("notifier: writing the scan watermark failed")

    def _states(self, strategy_ids: tuple[int, ...]) -> tuple[AlertState, ...]:
        """The saved states, with those of outcomes not written yet on top."""
        states = {(s.strategy_id, s.coin_id): s for s in self.store.states(strategy_ids)}
        wanted = set(strategy_ids)
        for outcome in self.unwritten:
            states.update({(s.strategy_id, s.coin_id): s for s in outcome.states if s.strategy_id in wanted})
        return tuple(states[key] for key in sorted(states))

    def _publish(self, written: WrittenAlert) -> None:
        if self.publish is None:
            return
        try:
            self.publish("alert", alert_document(written.id, written.alert), written.alert.user_id)
        except Exception:  # the stream is best effort; the alert is written and delivered anyway
            log.exception("notifier: publishing alert %d failed", written.id)

    def _dispatch(self, written: WrittenAlert) -> None:
        for job in jobs_of(written):
            if self.dispatcher.has(job.message.channel):
                self.dispatcher.submit(job)
            else:
                self._write(job, unconfigured(job, self._now_ms()))

    # -- results -----------------------------------------------------------------------------

    def _attempt_ended(self, attempt: Attempt) -> None:
        """Called in a sender thread."""
        self._attempts.put(attempt)
        with contextlib.suppress(pykka.ActorDeadError):  # stopping: on_stop writes it
            self.actor_ref.tell(_AttemptsWaiting())

    def _write_attempts(self) -> None:
        while True:
            try:
                attempt = self._attempts.get_nowait()
            except queue.Empty:
                return
            self._write(attempt.job, decide(attempt.job, attempt.outcome, attempt.finished_ms, self.policy))

    def _write(self, job: Job, decision: Decision) -> None:
        message = job.message
        delivery_id = message.delivery_id
        if decision.status == SENT:
            self.store.mark_sent(delivery_id, decision.at_ms, decision.attempts)
        elif decision.status == RETRY:
            assert decision.next_attempt_ms is not None and decision.detail is not None
            self.store.mark_retry(delivery_id, decision.attempts, decision.next_attempt_ms, decision.detail)
            log.info(
                "delivery %d (alert %d, %s): attempt %d failed, retry in %.0f s: %s",
                delivery_id,
                message.alert_id,
                message.channel,
                decision.attempts,
                (decision.next_attempt_ms - decision.at_ms) / 1000,
                decision.detail,
            )
            self.dispatcher.submit(replace(job, attempts=decision.attempts, due_ms=decision.next_attempt_ms))
        else:
            self.store.mark_failed(delivery_id, decision.detail or "failed", decision.attempts)
            log.warning(
                "delivery %d (alert %d, %s) failed after %d attempt(s): %s",
                delivery_id,
                message.alert_id,
                message.channel,
                decision.attempts,
                decision.detail,
            )
        if self.on_delivery is not None:
            self.on_delivery(delivery_id, decision.status)

    def _now_ms(self) -> int:
        return round(self.clock.now() * 1000)


class Dispatcher:
    """One :class:`_Lane` per channel; ``on_attempt`` is called (in a sender thread) after each
    attempt. After :meth:`stop`, submissions are ignored."""

    def __init__(
        self,
        channels: Mapping[str, Channel],
        clock: Clock,
        on_attempt: Callable[[Attempt], None],
        senders_per_channel: int = 4,
    ) -> None:
        self.lanes = {
            name: _Lane(channel, clock, on_attempt, senders_per_channel) for name, channel in channels.items()
        }

    def has(self, channel: str) -> bool:
        return channel in self.lanes

    def start(self) -> None:
        for lane in self.lanes.values():
            lane.start()

    def submit(self, job: Job) -> None:
        self.lanes[job.message.channel].submit(job)

    def stop(self, timeout: float) -> None:
        """Stop every lane; wait up to ``timeout`` seconds in all for the sends in flight."""
        deadline = time.monotonic() + timeout
        for lane in self.lanes.values():
            lane.halt()
        for lane in self.lanes.values():
            lane.join(deadline)


class _Lane:
    """One channel: a scheduler thread over paced per-destination queues, and sender threads.

    The scheduler is the only thread that sleeps on the clock (until the next delivery is due or a
    destination's pace allows it); anything that changes the queues interrupts that sleep.
    """

    def __init__(
        self, channel: Channel, clock: Clock, on_attempt: Callable[[Attempt], None], senders: int
    ) -> None:
        self.channel = channel
        self.clock = clock
        self.on_attempt = on_attempt
        self.queues: PacedQueues[Job] = PacedQueues(channel.min_interval_s)
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

    def halt(self) -> None:
        with self._lock:
            self._stopping = True
        self._poke()
        for _ in self._senders:
            self._work.put(None)  # behind any send already handed over: that one still goes

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
        while (item := self._work.get()) is not None:
            destination, job = item
            outcome = self._send(job)
            finished = self.clock.now()
            pause = outcome.retry_after_s if outcome.status == RETRY else None
            with self._lock:
                self.queues.done(destination, finished, pause)
                self._free += 1
            self._poke()
            self.on_attempt(Attempt(job, outcome, round(finished * 1000)))

    def _send(self, job: Job) -> Outcome:
        try:
            return self.channel.send(job.message)
        except Exception as error:  # a channel must not raise; if one does, it is a bug: retry later
            log.exception(
                "notifier: %s channel raised on delivery %d", self.channel.name, job.message.delivery_id
            )
            return Outcome(
                RETRY, f"internal error in the {self.channel.name} channel ({type(error).__name__})"
            )
