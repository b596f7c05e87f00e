"""Notifier actor: owns the alert tables; writes every alert before anything is sent, then delivers.

Mailbox (one message at a time, in this actor's thread and database connection):

- ``ScanOutcome`` (``tell``, from the Scanner workers): its alerts are worded
  (``ubot/notify/words.py``: subject, text, SMS text) and batched: one message per strategy per
  destination, the coins listed (``ubot/notify/batches.py``), after the hourly caps and the pause of
  a strategy that fires too often (``ubot/notify/caps.py``: its owner's ``pause`` hook disables it); the saved state of the strategies it forgets
  is deleted; the alerts, their deliveries and the state changes are written in one transaction (``AlertStore.record``: the outbox); then one log line per
  alert, the deliveries go to the senders, and the ``"alert"`` events to the stream (``publish``). The
  log line, the row and the event are the built-in channel: an alert without deliveries is
  complete once written.
- ``Released`` (``tell``, from the UserManager): held deliveries whose hold ended early (``/mute
  off``) were moved in the outbox; those queued in the senders are brought forward the same.
- ``GetAlertState``, ``GetScanMarks`` and ``GetAlerts`` (``ask``): answered after every write queued before them.
- The senders' results, written here too (the decisions are ``ubot/notify/outbox.py``).
- Retention: once an hour of data time (the snapshots' timestamps), alerts and deliveries older than
  ``retention_ms`` are deleted, one bounded batch (``AlertStore.prune``) per message to itself, so
  that a long backlog never holds the mailbox.

Sending happens beside the mailbox, in a :class:`~ubot.notify.dispatch.Dispatcher`
(``ubot/notify/dispatch.py``: per channel, a scheduler thread over paced per-destination queues and
a few sender threads). Time comes from the injected clock only.

On start, every delivery not yet sent is resumed from the database; on stop, the requests in flight
are cut (no receiver is waited for), and whatever was not sent stays pending in the database for the
next start.

Two other ways to deliver, for the roles (issue 11):

* ``claims`` (:class:`Claims`: the engine on PostgreSQL and ``--role notifier``): deliveries are not
  handed over when written, nor resumed at start; every ``poll_s`` (and at once after a write) the
  Notifier claims those due (``AlertStore.claim``: ``FOR UPDATE SKIP LOCKED`` and a lease), renews the
  leases of those it holds, and sends them. A retry goes back to the outbox (any notifier claims it
  when due). Per-destination pacing is shared through the database (``AlertStore.pace``).
* ``deliver=False`` (``--role scanner``): alerts are written (the outbox) and published, never sent.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pykka

from ubot import metrics
from ubot.actors.stage import not_fatal, stopping, unexpected
from ubot.clocks import Clock
from ubot.models.alerts import PRUNE_BATCH, AlertStore, WrittenAlert
from ubot.models.db import close_connection
from ubot.notify.batches import Pause, batched
from ubot.notify.caps import HOUR_MS, Caps, FiringLimit
from ubot.notify.channel import RETRY, SENT, Channel
from ubot.notify.dispatch import SENDERS_PER_CHANNEL, Dispatcher
from ubot.notify.messages import (
    Alert,
    AlertState,
    GetAlerts,
    GetAlertState,
    GetScanMarks,
    GetScanWatermark,
    Released,
    Scanned,
    ScanOutcome,
)
from ubot.notify.outbox import (
    Decision,
    Job,
    RetryPolicy,
    alert_document,
    decide,
    hold_until,
    jobs_of,
    signed,
    unconfigured,
)
from ubot.notify.words import Style, log_line, worded
from ubot.periodic import Periodic
from ubot.stopping import StopToken
from ubot.timeutil import iso_from_ms

log = logging.getLogger(__name__)

#: ``publish(event, data, user_id)``: how an alert reaches the stream of its owner.
Publish = Callable[[str, Mapping[str, Any], int | None], None]
#: ``on_delivery(delivery_id, status)`` after a delivery's new state is written (sent/retry/failed).
OnDelivery = Callable[[int, str], None]
#: Seconds a stop waits for the sender threads: their attempts are cut at once (the receivers are not
#: waited for), so this is only reached by a thread stuck outside any socket.
STOP_TIMEOUT_S = 2.0
#: ScanOutcomes kept while the database refuses writes (about an hour of one-minute ticks x 10 workers).
MAX_UNWRITTEN = 600


#: Alerts older than the retention are looked for once per this much data time.
PRUNE_EVERY_MS = 3_600_000


class _AttemptsWaiting:
    """Nudge: ended attempts are waiting in the dispatcher."""


class _Claim:
    """Claim the deliveries due (told by the poller thread, and after a write): claims mode."""


@dataclass(frozen=True)
class Claims:
    """How a Notifier shares the outbox with other notifier processes."""

    member: str  # this process's name, written as ``delivery.claimed_by``
    lease_s: float = 60.0  # a claim's lease, renewed every ``poll_s`` while held
    poll_s: float = 0.5
    limit: int = 200  # deliveries held at once


@dataclass(frozen=True)
class _Prune:
    """Delete one more batch of the alerts fired before ``before_ms`` (told to itself)."""

    before_ms: int
    pruned: int = 0  # alerts deleted by the earlier batches of this round


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
        senders_per_channel: int = SENDERS_PER_CHANNEL,
        sends_per_user: int | None = 2,
        retention_ms: int | None = None,
        prune_batch: int = PRUNE_BATCH,
        public_url: str = "",
        simulated: bool = False,
        claims: Claims | None = None,
        deliver: bool = True,
        messages_per_user_hour: int | None = None,
        messages_per_destination_hour: int | None = None,
        pause_after_alerts: int | None = None,
        pause_window_s: float = 3600.0,
        pause: Pause | None = None,
        shared_caps: bool = False,
        stop_token: StopToken | None = None,
    ) -> None:
        """``claims``: share the outbox with other notifier processes (see the module's text);
        ``deliver=False``: write alerts, never send them (a scanner process).
        ``messages_per_user_hour`` / ``messages_per_destination_hour``: the hourly caps (``None``:
        none); ``pause_after_alerts`` alerts of one strategy within ``pause_window_s`` pause it:
        ``pause(strategy_id, reason)`` (the UserManager disables it). ``shared_caps``: other processes
        write alerts too (scanner processes): the caps are recounted from the database before each
        tick's messages are admitted (``notify/caps.py``). ``stop_token``: a scanner process's stop
        (``ubot/stopping.py``): once set, the scan outcomes still in the mailbox are dropped, not
        written (their strategies' scan marks stay where they were: whichever scanner scans them
        next scans those snapshots again, ``scan/backlog.py``)."""
        super().__init__()
        self.stop_token = stop_token
        self.store = store
        self.claims = claims
        self.deliver = deliver
        self.held: set[int] = set()  # claims mode: the deliveries this Notifier holds a lease on
        self.poller: Periodic | None = None
        self.clock = clock
        self.policy = RetryPolicy(max_attempts, backoff_s, backoff_max_s)
        self.publish = publish
        self.on_delivery = on_delivery
        #: ScanOutcomes whose write failed (the database is down), oldest first: written before any newer.
        self.unwritten: collections.deque[ScanOutcome] = collections.deque()
        self.unwritten_failures = 0
        self.watermark_waiting: int | None = None
        #: ``[notify] retention_days`` in ms (``None``: alerts are kept for ever); the next data time
        #: at which old alerts are looked for.
        self.retention_ms = retention_ms
        #: How alerts are worded (``ubot/notify/words.py``): a link to the coin under ``public_url``,
        #: "simulated market" said when it is.
        self.style = Style(public_url, simulated)
        self.caps = Caps(messages_per_user_hour, messages_per_destination_hour)
        self.shared_caps = shared_caps and (
            messages_per_user_hour is not None or messages_per_destination_hour is not None
        )
        self.firing = FiringLimit(pause_after_alerts, round(pause_window_s * 1000))
        self.pause = pause
        self.next_prune_ms: int | None = None
        self.prune_batch = prune_batch
        self.dispatcher = Dispatcher(
            channels,
            clock,
            self._nudge,
            senders_per_channel,
            sends_per_user,
            prepare=functools.partial(signed, secret_of=store.webhook_secret, unsent=store.still_unsent),
            sender_done=close_connection,  # a sender thread reads the webhook secret: its own connection
            pace=self._pace if claims is not None else None,
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def on_start(self) -> None:
        self.caps.recount(self.store.recent_messages(self._now_ms() - HOUR_MS))
        if not self.deliver:
            return
        if self.claims is not None:
            self.dispatcher.start()
            self.poller = Periodic(self.clock, self.claims.poll_s, self._poll, "ubot-notify-claims").start()
            self.actor_ref.tell(_Claim())
            return
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

    def _poll(self) -> bool:
        """The poller's beat (its thread): claim what is due; ``False`` once this actor is gone."""
        try:
            self.actor_ref.tell(_Claim())
        except pykka.ActorDeadError:
            return False
        return True

    def on_stop(self) -> None:
        if self.poller is not None:
            self.poller.close()
        self._flush()
        if self.unwritten:
            log.error(
                "notifier: stopping with %d scan outcome(s) not written: their alerts are lost",
                len(self.unwritten),
            )
        self.dispatcher.stop(STOP_TIMEOUT_S)
        self._write_attempts()  # those that ended while stopping: written, not resubmitted
        if self.claims is not None and self.deliver:
            try:  # what it held goes to the other notifiers now, not after the lease
                self.store.release(self.claims.member)
            except Exception:
                log.exception("notifier: releasing its claims failed (they pass with their lease)")
        close_connection()

    def on_failure(self, *exc_info: object) -> None:
        """pykka stops a failed actor without calling on_stop: the threads must stop too."""
        if self.poller is not None:
            self.poller.close()
        self.dispatcher.stop(STOP_TIMEOUT_S)
        close_connection()

    @functools.singledispatchmethod
    def on_receive(self, message: Any) -> Any:
        unexpected(self, message)

    def _recount(self, alerts: Sequence[Alert]) -> None:
        """The caps of these alerts' users and destinations, from the database (``Caps.recount``);
        when it cannot be read, this process's own counts stand."""
        users = {a.user_id for a in alerts}
        where = {(t.channel, t.target) for a in alerts for t in a.deliveries}
        since = self._now_ms() - self.caps.users.window_ms
        try:
            sent = self.store.recent_messages(since, users, {target for _, target in where})
        except Exception as error:
            log.warning("notifier: the hourly caps could not be recounted (%s); counting on locally", error)
            return
        self.caps.recount(sent, users, where)

    @on_receive.register
    def _outcome(self, message: ScanOutcome) -> None:
        if stopping(self):
            return
        alerts = tuple(worded(alert, self.style, with_short=False) for alert in message.alerts)
        if self.shared_caps and alerts:
            self._recount(alerts)
        batches = batched(alerts, self.style, self.caps, self.firing, self._now_ms())
        self.unwritten.append(replace(message, alerts=batches.alerts))
        self._flush()
        for strategy_id, reason in batches.paused:
            log.warning("notifier: strategy %d %s", strategy_id, reason)
            if self.pause is not None:
                try:
                    self.pause(strategy_id, reason)
                except Exception:  # it fires on; the next window pauses it again
                    log.exception("notifier: pausing strategy %d failed", strategy_id)

    @on_receive.register
    @not_fatal  # what was not written stays pending: resumed at the next start
    def _attempts_waiting(self, message: _AttemptsWaiting) -> None:
        self._write_attempts()

    @on_receive.register
    @not_fatal  # the next poll tries again
    def _claim(self, message: _Claim) -> None:
        claims = self.claims
        if claims is None:
            return
        now_ms = self._now_ms()
        lease_ms = round(claims.lease_s * 1000)
        self.held = self.store.renew(claims.member, self.held, now_ms + lease_ms)
        fresh = self.store.claim(claims.member, now_ms, lease_ms, claims.limit - len(self.held))
        for written in fresh:
            self.held.update(d.id for d in written.deliveries)
            self._dispatch(written)

    @on_receive.register
    @not_fatal  # they stay in the outbox, moved earlier: sent when due after the next start
    def _released(self, message: Released) -> None:
        """Held deliveries moved earlier in the outbox (``UserManager.mute``): those queued here go
        then. Claims mode: nothing to do, they are claimed from the outbox when due."""
        if self.claims is None and self.deliver:
            moved = self.dispatcher.release(frozenset(message.delivery_ids), message.due_ms)
            log.info(
                "notifier: %d held delivery(ies) brought forward to %s", moved, iso_from_ms(message.due_ms)
            )

    def _pace(self, channel: str, destination: str, interval_s: float) -> float:
        """The shared pacing (claims mode), called in a sender thread: seconds to wait."""
        return self.store.pace(channel, destination, self._now_ms(), round(interval_s * 1000)) / 1000

    @on_receive.register
    @not_fatal  # the next hour of data tries again
    def _prune(self, message: _Prune) -> None:
        pruned = self.store.prune(message.before_ms, self.prune_batch)
        total = message.pruned + pruned
        if pruned == self.prune_batch:  # maybe more: the next batch after what is waiting in the mailbox
            self._tell_self(_Prune(message.before_ms, total))
        elif total:
            log.info("notifier: %d alert(s) older than the retention deleted, with their deliveries", total)

    @on_receive.register
    def _scanned(self, message: Scanned) -> None:
        if stopping(self):  # its outcomes may have been dropped: the watermark stays
            return
        self._flush()
        if self.unwritten:  # written after the outcomes it covers, or not at all
            self.watermark_waiting = max(self.watermark_waiting or 0, message.snapshot_id)
        else:
            self._set_watermark(message.snapshot_id)

    @on_receive.register
    def _watermark(self, message: GetScanWatermark) -> int | None:
        self._flush()
        return self.store.scan_watermark()

    @on_receive.register
    def _scan_marks(self, message: GetScanMarks) -> dict[int, int]:
        self._flush()
        marks = self.store.scan_marks(message.strategy_ids)
        wanted = set(message.strategy_ids)
        for outcome in self.unwritten:  # not written yet (the database is down): written before any newer
            for strategy_id in wanted.intersection(outcome.scanned):
                marks[strategy_id] = max(marks.get(strategy_id, 0), outcome.snapshot_id)
        return marks

    @on_receive.register
    def _alert_state(self, message: GetAlertState) -> tuple[AlertState, ...]:
        self._flush()
        return self._states(message.strategy_ids)

    @on_receive.register
    def _alerts(self, message: GetAlerts) -> Any:
        m = message
        return self.store.alerts(m.user_id, m.since_ms, m.strategy_id, m.limit, m.before, m.coin_id)

    # -- alerts ------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write the outcomes not written yet, oldest first; stop at the first that fails (the database
        is down) and try again with the next message. In order, so a newer state never loses to an
        older one; bounded, so a long outage cannot exhaust memory."""
        while self.unwritten:
            outcome = self.unwritten[0]
            try:
                self.store.forget_states(outcome.forget)  # again if the record fails: no harm
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
            self._maybe_prune(outcome.snapshot_ms)
            metrics.ALERTS.inc(len(written))
            if log.isEnabledFor(logging.INFO):  # a thousand lines' words only when they are logged
                for w in written:
                    log.info("%s", log_line(w.id, w.alert))
            if self.deliver and self.claims is None:
                for w in written:  # the sends first: a batch's thousand stream events need not delay them
                    self._dispatch(w)
            for w in written:
                self._publish(w)
            if written and self.deliver and self.claims is not None:
                self._tell_self(_Claim())  # claimed from the outbox, by whichever notifier is first

    def _maybe_prune(self, data_ms: int) -> None:
        """Once an hour of data time, start deleting the alerts older than the retention."""
        if self.retention_ms is None or (self.next_prune_ms is not None and data_ms < self.next_prune_ms):
            return
        self.next_prune_ms = data_ms + PRUNE_EVERY_MS
        self._tell_self(_Prune(data_ms - self.retention_ms))

    def _tell_self(self, message: _Prune | _Claim) -> None:
        with contextlib.suppress(pykka.ActorDeadError):  # stopping (on_stop writes what is left): later
            self.actor_ref.tell(message)

    def _set_watermark(self, snapshot_id: int) -> None:
        try:
            self.store.set_scan_watermark(snapshot_id)
        except Exception:  # the next scan's moves it; a crash before then rescans a little more
            log.exception("notifier: writing the scan watermark failed")

    def _states(self, strategy_ids: tuple[int, ...]) -> tuple[AlertState, ...]:
        """The saved states, with those of outcomes not written yet on top, in order."""
        states = {(s.strategy_id, s.coin_id): s for s in self.store.states(strategy_ids)}
        wanted = set(strategy_ids)
        for outcome in self.unwritten:
            if outcome.forget:
                states = {key: s for key, s in states.items() if key[0] not in outcome.forget}
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

    def _nudge(self) -> None:
        """Called in a sender thread: attempts are waiting in the dispatcher."""
        with contextlib.suppress(pykka.ActorDeadError):  # stopping: on_stop writes them
            self.actor_ref.tell(_AttemptsWaiting())

    def _write_attempts(self) -> None:
        for attempt in self.dispatcher.ended():
            self._write(attempt.job, decide(attempt.job, attempt.outcome, attempt.finished_ms, self.policy))

    def _write(self, job: Job, decision: Decision) -> None:
        message = job.message
        delivery_id = message.delivery_id
        self.held.discard(delivery_id)
        if decision.status == SENT:
            self.store.mark_sent(delivery_id, decision.at_ms, decision.attempts)
        elif decision.status == RETRY:
            assert decision.next_attempt_ms is not None and decision.detail is not None
            if not self.store.mark_retry(
                delivery_id, decision.attempts, decision.next_attempt_ms, decision.detail
            ):
                log.info(
                    "delivery %d (alert %d, %s): cancelled, not sent",
                    delivery_id,
                    message.alert_id,
                    message.channel,
                )
                return  # cancelled meanwhile (its strategy was disabled or deleted)
            log.info(
                "delivery %d (alert %d, %s): attempt %d failed, retry in %.0f s: %s",
                delivery_id,
                message.alert_id,
                message.channel,
                decision.attempts,
                (decision.next_attempt_ms - decision.at_ms) / 1000,
                decision.detail,
            )
            if self.claims is None:  # claims mode: back in the outbox, claimed again when due
                self.dispatcher.submit(
                    replace(job, attempts=decision.attempts, due_ms=decision.next_attempt_ms)
                )
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
        metrics.DELIVERIES.labels(message.channel, decision.status).inc()
        if self.on_delivery is not None:
            self.on_delivery(delivery_id, decision.status)

    def _now_ms(self) -> int:
        return round(self.clock.now() * 1000)
