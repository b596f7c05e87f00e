"""The queries on the alert tables: alerts, their deliveries (the outbox) and the firing states. Used by
the Notifier actor alone.

:meth:`AlertStore.record` writes one worker's :class:`~ubot.notify.messages.ScanOutcome` (alerts,
one delivery row per channel, the state upserts) in one transaction, before anything is sent: a
crash after it loses nothing, the deliveries are resumed from :meth:`~AlertStore.pending` on the
next start. Delivery is at least once: a crash between a provider accepting a message and
:meth:`~AlertStore.mark_sent` sends that message again after the restart; each delivery has a random
public id (``key``) that stays the same on every attempt, for the receiver to drop the repeat.

A webhook's secret is not written with its deliveries: :meth:`AlertStore.webhook_secret` reads it
from the user's settings when the delivery is sent. Alerts and their deliveries older than the
retention go in bounded batches (:meth:`AlertStore.prune`).

Several notifier processes (the roles, on PostgreSQL) share the outbox through claims:
:meth:`AlertStore.claim` takes due deliveries nobody holds (``SELECT ... FOR UPDATE SKIP LOCKED``,
so two notifiers never take the same row), marking them ``claimed_by`` this notifier until
``lease_until``; the claimer renews its leases while it holds them (:meth:`AlertStore.renew`), and
writing an attempt's result ends the lease. A notifier that dies stops renewing: once its leases pass,
another claims the deliveries. What it had sent but not yet marked sent is sent again then: that is
the at-least-once window, a lease long at most (the ``key`` lets the receiver drop the repeat).
:meth:`AlertStore.pace` keeps a paced channel's per-destination interval across notifiers.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from peewee import EXCLUDED, JOIN, Case, Database, IntegrityError, Model

from ubot.jsonsafe import json_values
from ubot.models.bulk import insert_rows
from ubot.models.db import is_sqlite, writing
from ubot.models.tables import (
    AlertRecord,
    AlertStateRecord,
    Delivery,
    JsonField,
    Meta,
    Pacing,
    ScanMark,
    SnapshotRecord,
    Strategy,
    UserSettings,
)
from ubot.notify.messages import NOT_VERIFIED, Alert, AlertState, AlertView, DeliveryView, ScanOutcome

log = logging.getLogger(__name__)
#: Meta key of the scan watermark: snapshots after it were stored but not (completely) scanned.
SCAN_WATERMARK = "scan_watermark"

PENDING, HELD, SENT, FAILED = "pending", "held", "sent", "failed"
CAPPED, CANCELLED = "capped", "cancelled"
UNSENT = (PENDING, HELD)
CHUNK = 500  # rows per INSERT: well under SQLite's and PostgreSQL's bound-parameter limits
#: Alerts deleted (with their deliveries) per transaction by :meth:`AlertStore.prune`.
PRUNE_BATCH = 1000

#: ``(alert, now_ms) -> end of the recipient's quiet hours (epoch ms)``, or ``None``: send now.
HoldUntil = Callable[[Alert, int], int | None]


@dataclass(frozen=True)
class DeliveryRow:
    """One delivery not yet sent, as written."""

    id: int
    alert_id: int
    channel: str
    target: str
    status: str
    attempts: int
    next_attempt_ms: int
    key: str = ""  # the public id (32 hex digits): the same on every attempt
    subject: str | None = None  # the batch's message on this channel; None: the alert's own
    text: str | None = None
    skipped: int = 0  # alerts not sent to this destination before it (hourly caps)


@dataclass(frozen=True)
class WrittenAlert:
    """An alert with its id and its deliveries (those still to send, when read back). The first alert
    of a batch (a strategy's alerts of one tick) holds the batch's deliveries and its ``members``
    (the other alerts, in order, with their ids); the others have neither."""

    id: int
    alert: Alert
    deliveries: tuple[DeliveryRow, ...]
    members: tuple[tuple[int, Alert], ...] = ()

    @property
    def batch(self) -> tuple[tuple[int, Alert], ...]:
        """Every alert of the batch, this one first."""
        return ((self.id, self.alert), *self.members)


class AlertStore:
    def __init__(
        self,
        db: Database,
        *,
        replay: bool = False,
        deliver_replayed: bool = False,
        scan_key: str = SCAN_WATERMARK,
        marks: bool = False,
    ) -> None:
        """``replay``: the market is a replay of recordings, so every alert written is marked
        ``replayed``; its deliveries are written (and so sent) only with ``deliver_replayed``.
        ``scan_key``: the Meta key of this scanner's scan watermark (a scanner process has its own,
        ``scanned:<member>``: how far it has written its scans). ``marks``: an outcome that names its
        snapshot moves the scan marks of the strategies it scanned (``scan_mark``), and is written
        only for those it moved (a scanner process: several may scan one strategy for one snapshot
        while a share changes hands; the first to write wins, the others' outcomes are dropped)."""
        self.db = db
        self.marks = marks
        self.replay = replay
        self.deliver = deliver_replayed or not replay
        self.scan_key = scan_key

    # --- writes ----------------------------------------------------------------------------

    def record(
        self, outcome: ScanOutcome, now_ms: int, hold_until: HoldUntil | None = None
    ) -> list[WrittenAlert]:
        """Write the outcome's alerts, their deliveries and its state changes, all or nothing.

        The alerts of one strategy form its batch (``ubot/notify/batches.py``): the first holds the
        deliveries, the others point to it (``alert.batch``); their own deliveries, if any, are not
        written. A delivery whose recipient is in quiet hours is ``held`` until their end
        (``hold_until``), one over an hourly cap is ``capped``, the others are ``pending`` from
        ``now_ms``. A delivery its alert's spec would hold is held as the recipient's settings say
        when it is written (:func:`holds_now`: a hold ended meanwhile holds nothing). Alerts and states
        of a strategy deleted since the scan are dropped (its owner deleted it: nothing to tell).
        """
        for attempt in (1, 2):
            try:
                with writing(self.db):
                    return self._record(outcome, now_ms, hold_until)
            except IntegrityError:
                # PostgreSQL: a strategy deleted after the check below, before the insert. Once more.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _record(self, outcome: ScanOutcome, now_ms: int, hold_until: HoldUntil | None) -> list[WrittenAlert]:
        wanted = {a.strategy_id for a in outcome.alerts} | {s.strategy_id for s in outcome.states}
        live = _existing_strategies(wanted)
        if self.marks and outcome.snapshot_id:
            moved = advance_marks(outcome.scanned, outcome.snapshot_id)
            if refused := len(outcome.scanned) - len(moved):
                log.warning(
                    "worker %d snapshot %d: %d strategy(ies) scanned already by another scanner; their "
                    "outcome is not written again",
                    outcome.worker,
                    outcome.snapshot_id,
                    refused,
                )
                live &= moved
        alerts = [
            a
            if self.deliver and not self.replay and _plain(a.values)  # as they are: no copy of a thousand
            else replace(
                a,
                values=json_values(a.values),
                replayed=a.replayed or self.replay,
                deliveries=a.deliveries if self.deliver else (),
            )
            for a in outcome.alerts
            if a.strategy_id in live
        ]
        states = {(s.strategy_id, s.coin_id): s for s in outcome.states if s.strategy_id in live}
        if len(alerts) < len(outcome.alerts):
            log.info(
                "worker %d tick %d: %d alert(s) of deleted strategies dropped",
                outcome.worker,
                outcome.tick,
                len(outcome.alerts) - len(alerts),
            )

        alert_ids = _insert_returning_ids(AlertRecord, [_alert_row(a) for a in alerts])
        leads: dict[int | None, int] = {}  # strategy -> the id of its batch's first alert
        members: dict[int, list[tuple[int, Alert]]] = {}
        holds: dict[int, int | None] = {}  # lead alert id -> until when its spec holds its deliveries
        held_users: set[int] = set()
        for alert_id, alert in zip(alert_ids, alerts):
            lead = leads.setdefault(alert.strategy_id, alert_id)
            if lead != alert_id:
                members.setdefault(lead, []).append((alert_id, alert))
            elif hold_until and alert.deliveries:
                until = holds[alert_id] = hold_until(alert, now_ms)
                if until is not None and until > now_ms:
                    held_users.add(alert.user_id)
        held_by = holds_now(held_users)  # as their settings say now
        delivery_rows: list[dict[str, Any]] = []
        for alert_id, alert in zip(alert_ids, alerts):
            if leads[alert.strategy_id] != alert_id:
                continue
            until = holds.get(alert_id)
            if hold_until and alert.user_id in held_by:
                until = hold_until(replace(alert, **held_by[alert.user_id]), now_ms)
            held = until is not None and until > now_ms
            for target in alert.deliveries:
                delivery_rows.append(
                    {
                        "alert": alert_id,
                        "channel": target.channel,
                        "target": target.target,
                        "key": Delivery.key.default(),  # 128 random bits, 32 hex digits
                        "status": FAILED
                        if target.unverified
                        else CAPPED
                        if target.capped
                        else HELD
                        if held
                        else PENDING,
                        "detail": NOT_VERIFIED.format(channel=target.channel) if target.unverified else None,
                        "attempts": 0,
                        "next_attempt_at": until if held else now_ms,
                        "created_at": now_ms,
                        "subject": target.subject or None,
                        "text": target.text or None,
                        "skipped": target.skipped,
                    }
                )
        for lead, batch in members.items():
            ids = [i for i, _ in batch]
            for start in range(0, len(ids), CHUNK):
                AlertRecord.update(batch=lead).where(AlertRecord.id.in_(ids[start : start + CHUNK])).execute()
        delivery_ids = _insert_returning_ids(Delivery, delivery_rows)

        fields = (
            AlertStateRecord.strategy,
            AlertStateRecord.coin_id,
            AlertStateRecord.active,
            AlertStateRecord.last_fired_at,
            AlertStateRecord.last_bar_open,
        )
        insert_rows(
            AlertStateRecord,
            fields,
            [(s.strategy_id, s.coin_id, s.active, s.last_fired_ms, s.last_bar_ms) for s in states.values()],
            conflict_target=fields[:2],
            update=fields[2:],
        )

        by_alert: dict[int, list[DeliveryRow]] = {}
        for delivery_id, row in zip(delivery_ids, delivery_rows):
            by_alert.setdefault(row["alert"], []).append(
                DeliveryRow(
                    id=delivery_id,
                    alert_id=row["alert"],
                    channel=row["channel"],
                    target=row["target"],
                    status=row["status"],
                    attempts=0,
                    next_attempt_ms=row["next_attempt_at"],
                    key=row["key"],
                    subject=row["subject"],
                    text=row["text"],
                    skipped=row["skipped"],
                )
            )
        return [
            WrittenAlert(
                alert_id,
                alert,
                tuple(d for d in by_alert.get(alert_id, ()) if d.status not in (CAPPED, FAILED)),
                tuple(members.get(alert_id, ())),
            )
            for alert_id, alert in zip(alert_ids, alerts)
        ]

    def mark_sent(self, delivery_id: int, now_ms: int, attempts: int | None = None) -> bool:
        """The provider accepted it. ``attempts``: how many it took (default: one more). A delivery
        cancelled while its attempt was under way was sent all the same: it says so."""
        detail = Case(Delivery.status, [(CANCELLED, None)], Delivery.detail)  # "cancelled: ..." no more
        return self._finish(delivery_id, SENT, attempts, (*UNSENT, CANCELLED), sent_at=now_ms, detail=detail)

    def mark_retry(self, delivery_id: int, attempts: int, next_at_ms: int, detail: str) -> bool:
        """It failed in a way that may pass: ``pending`` again, from ``next_at_ms``."""
        return (
            Delivery.update(
                status=PENDING,
                attempts=attempts,
                next_attempt_at=next_at_ms,
                detail=detail,
                lease_until=None,  # claimable again (by any notifier) once due
            )
            .where((Delivery.id == delivery_id) & Delivery.status.in_(UNSENT))
            .execute()
            == 1
        )

    def mark_failed(self, delivery_id: int, detail: str, attempts: int | None = None) -> bool:
        """It will never be sent; ``detail`` tells the user why."""
        return self._finish(delivery_id, FAILED, attempts, detail=detail)

    def _finish(
        self,
        delivery_id: int,
        status: str,
        attempts: int | None,
        before: tuple[str, ...] = UNSENT,
        **values: Any,
    ) -> bool:
        """Only an unsent delivery changes (``before``): a sent one is never sent (nor failed) again."""
        count = Delivery.attempts + 1 if attempts is None else attempts
        return (
            Delivery.update(status=status, attempts=count, lease_until=None, **values)
            .where((Delivery.id == delivery_id) & Delivery.status.in_(before))
            .execute()
            == 1
        )

    def prune(self, older_than_ms: int, batch: int = PRUNE_BATCH) -> int:
        """Delete at most ``batch`` of the oldest alerts fired before ``older_than_ms``, with their
        deliveries, in one transaction; how many alerts went (``batch``: call again, there may be more).
        A delivery still to send is kept with its alert (it cannot be that old: retries end within
        hours; only a bug would leave one)."""
        with writing(self.db):
            unsent = Delivery.select(Delivery.alert).where(Delivery.status.in_(UNSENT))
            ids = [
                i
                for (i,) in AlertRecord.select(AlertRecord.id)
                .where(
                    (AlertRecord.fired_at < older_than_ms)
                    & AlertRecord.id.not_in(unsent)
                    & (AlertRecord.batch.is_null() | AlertRecord.batch.not_in(unsent))
                )
                .order_by(AlertRecord.id)  # the oldest first, by the primary key: no sort, no scan
                .limit(batch)
                .tuples()
            ]
            if ids:
                Delivery.delete().where(Delivery.alert.in_(ids)).execute()
                AlertRecord.delete().where(AlertRecord.id.in_(ids)).execute()
        return len(ids)

    # --- reads -----------------------------------------------------------------------------

    def webhook_secret(self, user_id: int) -> str | None:
        """The user's webhook secret as set now (``None`` without one): what a webhook delivery is
        signed with, read when it is sent, so that a rotated secret applies to deliveries in wait."""
        row = (
            UserSettings.select(UserSettings.webhook_secret)
            .where(UserSettings.user == user_id)
            .tuples()
            .first()
        )
        return row[0] if row and row[0] else None

    def pending(self) -> list[WrittenAlert]:
        """Every delivery not yet sent (pending or held), with its alert, earliest due first: what to
        resume at start-up."""
        return self._unsent(Delivery.status.in_(UNSENT))

    def _unsent(self, where: Any) -> list[WrittenAlert]:
        query = (
            Delivery.select(Delivery, AlertRecord)
            .join(AlertRecord, JOIN.INNER)
            .where(where & Delivery.status.in_(UNSENT))
            .order_by(Delivery.next_attempt_at, Delivery.id)
        )
        alerts: dict[int, Alert] = {}
        deliveries: dict[int, list[DeliveryRow]] = {}
        for row in query:
            if row.alert_id not in alerts:
                alerts[row.alert_id] = _alert_of(row.alert)
                deliveries[row.alert_id] = []
            deliveries[row.alert_id].append(_delivery_of(row))
        members: dict[int, list[tuple[int, Alert]]] = {}
        leads = list(alerts)
        for start in range(0, len(leads), CHUNK):
            rows = AlertRecord.select().where(AlertRecord.batch.in_(leads[start : start + CHUNK]))
            for member in rows.order_by(AlertRecord.id):
                members.setdefault(member.batch, []).append((member.id, _alert_of(member)))
        return [
            WrittenAlert(i, alert, tuple(deliveries[i]), tuple(members.get(i, ())))
            for i, alert in alerts.items()
        ]

    def still_unsent(self, delivery_id: int) -> bool:
        """Whether the delivery is still to be sent (not cancelled meanwhile by its strategy's owner)."""
        row = Delivery.select(Delivery.status).where(Delivery.id == delivery_id).tuples().first()
        return row is not None and row[0] in UNSENT

    def recent_messages(
        self, since_ms: int, users: Iterable[int] | None = None, targets: Iterable[str] | None = None
    ) -> list[tuple[int, str, str, int]]:
        """``(user_id, channel, target, created_ms)`` of the deliveries written since ``since_ms`` and
        not capped or cancelled, oldest first: what the hourly caps count (``Caps.recount``). With
        ``users`` or ``targets``: only those of these users or to these addresses."""
        where = (Delivery.created_at >= since_ms) & Delivery.status.not_in((CAPPED, CANCELLED))
        if users is not None or targets is not None:
            where &= AlertRecord.user.in_(list(users or ())) | Delivery.target.in_(list(targets or ()))
        query = (
            Delivery.select(AlertRecord.user, Delivery.channel, Delivery.target, Delivery.created_at)
            .join(AlertRecord)
            .where(where)
            .order_by(Delivery.created_at, Delivery.id)
        )
        return [(u, c, t, at) for u, c, t, at in query.tuples()]

    # --- claims (several notifier processes) ----------------------------------------------------

    def claim(self, member: str, now_ms: int, lease_ms: int, limit: int) -> list[WrittenAlert]:
        """Claim up to ``limit`` deliveries due by ``now_ms`` (pending, or held until then) that no
        notifier holds (never claimed, or the lease passed), earliest due first, for ``member``
        until ``now_ms + lease_ms``; returns them with their alerts. On PostgreSQL the rows are
        locked with ``FOR UPDATE SKIP LOCKED``: notifiers claiming at once each get other rows,
        without waiting for each other. On SQLite the write transaction is the lock (one process)."""
        if limit <= 0:
            return []
        with writing(self.db):
            query = (
                Delivery.select(Delivery.id)
                .where(
                    Delivery.status.in_(UNSENT)
                    & (Delivery.next_attempt_at <= now_ms)
                    & (Delivery.lease_until.is_null() | (Delivery.lease_until < now_ms))
                )
                .order_by(Delivery.next_attempt_at, Delivery.id)
                .limit(limit)
            )
            if not is_sqlite(self.db):
                query = query.for_update(skip_locked=True)
            ids = [i for (i,) in query.tuples()]
            if ids:
                Delivery.update(claimed_by=member, lease_until=now_ms + lease_ms).where(
                    Delivery.id.in_(ids)
                ).execute()
        return self._unsent(Delivery.id.in_(ids)) if ids else []

    def renew(self, member: str, ids: Iterable[int], until_ms: int) -> set[int]:
        """Extend ``member``'s leases of these deliveries to ``until_ms``; the ids it still holds
        (one whose lease passed and that another notifier claimed is not among them: drop it)."""
        wanted = list(ids)
        if not wanted:
            return set()
        held = (Delivery.claimed_by == member) & Delivery.status.in_(UNSENT) & Delivery.id.in_(wanted)
        with writing(self.db):
            Delivery.update(lease_until=until_ms).where(held).execute()
            return {i for (i,) in Delivery.select(Delivery.id).where(held).tuples()}

    def release(self, member: str) -> int:
        """End ``member``'s leases (it stops): what it held unsent is claimable by any notifier at
        once; how many."""
        with writing(self.db):
            return (
                Delivery.update(lease_until=None)
                .where((Delivery.claimed_by == member) & Delivery.status.in_(UNSENT))
                .execute()
            )

    def claims(self, member: str, now_ms: int) -> int:
        """How many unsent deliveries ``member`` holds a live lease on (for ``/health``)."""
        return (
            Delivery.select()
            .where(
                (Delivery.claimed_by == member)
                & Delivery.status.in_(UNSENT)
                & (Delivery.lease_until >= now_ms)
            )
            .count()
        )

    def pace(self, channel: str, destination: str, now_ms: int, interval_ms: int) -> int:
        """Take the next send slot of ``destination`` on ``channel``, shared by every notifier:
        0 when it is taken now (the next one opens ``interval_ms`` later), else how many ms until it
        opens (nothing taken: ask again then)."""
        if interval_ms <= 0:
            return 0
        key = hashlib.sha256(f"{channel}\0{destination}".encode()).hexdigest()
        with writing(self.db):
            taken = list(
                Pacing.insert(key=key, next_at=now_ms + interval_ms)
                .on_conflict(
                    conflict_target=[Pacing.key],
                    update={Pacing.next_at: now_ms + interval_ms},
                    where=(Pacing.next_at <= now_ms),
                )
                .returning(Pacing.next_at)
                .tuples()
                .execute()
            )
            if taken:
                return 0
            row = Pacing.get_or_none(Pacing.key == key)
        return 0 if row is None else max(1, row.next_at - now_ms)

    def scan_watermark(self) -> int | None:
        """The id of the last snapshot whose scan is written (its alerts and states), or None."""
        row = Meta.get_or_none(Meta.key == self.scan_key)
        return None if row is None else int(row.value)

    def set_scan_watermark(self, snapshot_id: int) -> None:
        """Move the watermark forward to ``snapshot_id`` (never back)."""
        current = self.scan_watermark()
        if current is not None and current >= snapshot_id:
            return
        with writing(self.db):
            Meta.insert(key=self.scan_key, value=str(snapshot_id)).on_conflict(
                conflict_target=[Meta.key], update={Meta.value: str(snapshot_id)}
            ).execute()

    def scan_marks(self, strategy_ids: Iterable[int]) -> dict[int, int]:
        """Per strategy with a mark, the last snapshot whose scan of it is written."""
        ids = list(strategy_ids)
        found: dict[int, int] = {}
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            query = ScanMark.select(ScanMark.strategy_id, ScanMark.snapshot_id).where(
                ScanMark.strategy_id.in_(chunk)
            )
            found.update(query.tuples())
        return found

    def forget_states(self, strategy_ids: Iterable[int]) -> int:
        """Delete the firing state of these strategies; how many rows went."""
        ids = list(strategy_ids)
        if not ids:
            return 0
        with writing(self.db):
            return AlertStateRecord.delete().where(AlertStateRecord.strategy.in_(ids)).execute()

    def states(self, strategy_ids: Iterable[int]) -> tuple[AlertState, ...]:
        """The firing states of these strategies, by strategy then coin."""
        ids = list(strategy_ids)
        if not ids:
            return ()
        rows = (
            AlertStateRecord.select()
            .where(AlertStateRecord.strategy.in_(ids))
            .order_by(AlertStateRecord.strategy, AlertStateRecord.coin_id)
        )
        return tuple(
            AlertState(r.strategy_id, r.coin_id, r.active, r.last_fired_at, r.last_bar_open) for r in rows
        )

    def alerts(
        self,
        user_id: int,
        since_ms: int | None = None,
        strategy_id: int | None = None,
        limit: int = 50,
        before: int | None = None,
        coin_id: int | None = None,
    ) -> tuple[AlertView, ...]:
        """The user's alerts fired at or after ``since_ms`` (of one strategy, of one coin when
        given), newest first, each with every delivery's status. ``before``: only those listed after
        that alert (an id), to page back."""
        query = AlertRecord.select().where(AlertRecord.user == user_id)
        if before is not None:
            mark = AlertRecord.get_or_none((AlertRecord.id == before) & (AlertRecord.user == user_id))
            if mark is None:
                query = query.where(AlertRecord.id < before)
            else:
                query = query.where(
                    (AlertRecord.fired_at < mark.fired_at)
                    | ((AlertRecord.fired_at == mark.fired_at) & (AlertRecord.id < before))
                )
        if since_ms is not None:
            query = query.where(AlertRecord.fired_at >= since_ms)
        if strategy_id is not None:
            query = query.where(AlertRecord.strategy == strategy_id)
        if coin_id is not None:
            query = query.where(AlertRecord.coin_id == coin_id)
        rows = list(query.order_by(AlertRecord.fired_at.desc(), AlertRecord.id.desc()).limit(limit))
        # An alert's deliveries are its batch's: those of the batch's first alert.
        views: dict[int, list[DeliveryView]] = {row.batch or row.id: [] for row in rows}
        if rows:
            for d in Delivery.select().where(Delivery.alert.in_(list(views))).order_by(Delivery.id):
                views[d.alert_id].append(DeliveryView(d.channel, d.status, d.attempts, d.detail, d.sent_at))
        return tuple(
            AlertView(
                id=r.id,
                strategy_id=r.strategy_id,
                strategy_name=r.strategy_name,
                coin_id=r.coin_id,
                symbol=r.symbol,
                timeframe=r.timeframe,
                fired_at_ms=r.fired_at,
                values=r.values,
                text=r.text,
                deliveries=tuple(views[r.batch or r.id]),
                condition=r.condition,
                bar_open_ms=r.bar_open,
                replayed=r.replayed,
            )
            for r in rows
        )


def cancel_deliveries(strategy_id: int, why: str) -> int:
    """Cancel the unsent deliveries of a strategy's alerts (its owner disabled or deleted it); how
    many. Called by the UserManager in the transaction of that change; a sender about to send one
    finds it cancelled (``AlertStore.still_unsent``) and does not."""
    alerts = AlertRecord.select(AlertRecord.id).where(AlertRecord.strategy == strategy_id)
    return (
        Delivery.update(status=CANCELLED, detail=why)
        .where(Delivery.status.in_(UNSENT) & Delivery.alert.in_(alerts))
        .execute()
    )


def release_held(user_id: int, until_ms: int) -> list[int]:
    """Move the user's deliveries held past ``until_ms`` (quiet hours, a mute) to ``until_ms``: their
    hold ended earlier than it said (``/mute off``, a shorter mute, other quiet hours). Never later,
    never dropped, nothing else changed: they were admitted by the hourly caps when written, and the
    senders pace them per destination as any. The ids moved. Called by the UserManager in the
    transaction of that change; a Notifier that has them queued is told (``Released``), notifiers
    claiming from the outbox claim them when due."""
    alerts = AlertRecord.select(AlertRecord.id).where(AlertRecord.user == user_id)
    moved = Delivery.select(Delivery.id).where(
        (Delivery.status == HELD) & (Delivery.next_attempt_at > until_ms) & Delivery.alert.in_(alerts)
    )
    ids = [i for (i,) in moved.tuples()]
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        Delivery.update(next_attempt_at=until_ms).where(
            Delivery.id.in_(chunk) & (Delivery.status == HELD)
        ).execute()
    return ids


def holds_now(users: set[int]) -> dict[int, dict[str, Any]]:
    """What holds the deliveries of each of these users as their settings say now (quiet hours, time
    zone, mute), by user, read with a share lock on their settings rows: the ``Alert`` fields that
    :func:`~ubot.notify.outbox.hold_until` reads. Called by :meth:`AlertStore.record` for the users
    whose alerts it would hold.

    An alert carries the holds of its strategy's spec, which the Scanner may have had a moment before
    they were ended or shortened (``/mute off``, other quiet hours); their release
    (:func:`release_held`, in the transaction that changes the settings row) moves only the
    deliveries written. On PostgreSQL the two meet at the settings row: a release that changed it
    first makes this read wait for its commit and then see the new settings; a write that read it
    first makes the release's change wait for the write's commit, and the release then sees the
    written deliveries. Either way nothing stays held past what the settings hold. (SQLite has one
    writer at a time.) A user without a settings row is left out (their alert's holds stand)."""
    if not users:
        return {}
    query = (
        UserSettings.select(
            UserSettings.user, UserSettings.quiet_hours, UserSettings.timezone, UserSettings.muted_until
        )
        .where(UserSettings.user.in_(sorted(users)))
        .order_by(UserSettings.user)  # one order for every writer: no deadlock between two of them
    )
    if not is_sqlite(UserSettings._meta.database):
        query = query.for_update("FOR SHARE")
    return {
        user: {"quiet_hours": quiet, "timezone": timezone or "UTC", "muted_until_ms": muted}
        for user, quiet, timezone, muted in query.tuples()
    }


def _plain(values: Mapping[str, Any]) -> bool:
    """Every value a finite ``float`` or ``None`` already (as the Scanner makes them)."""
    return all(v is None or (type(v) is float and math.isfinite(v)) for v in values.values())


def advance_marks(strategy_ids: Sequence[int], snapshot_id: int) -> set[int]:
    """Move the scan marks of ``strategy_ids`` to ``snapshot_id`` where they are older (or missing);
    the ids whose mark moved. One ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` per chunk: on
    PostgreSQL a second transaction moving the same mark waits for the first's row lock, then sees
    its mark and moves nothing (so two scanners racing for a strategy's snapshot both scan it, and
    only the first to commit writes it); SQLite has one writer at a time."""
    moved: set[int] = set()
    db = ScanMark._meta.database
    one_row = f"({db.param}, {db.param})"
    sql, _ = (
        ScanMark.insert(strategy_id=0, snapshot_id=0)
        .on_conflict(
            conflict_target=[ScanMark.strategy_id],
            update={ScanMark.snapshot_id: EXCLUDED.snapshot_id},
            where=ScanMark.snapshot_id < EXCLUDED.snapshot_id,
        )
        .returning(ScanMark.strategy_id)
        .sql()
    )
    head, found, conflict = sql.partition(one_row)
    if not found:
        raise RuntimeError(f"unexpected INSERT rendering: {sql}")
    for start in range(0, len(strategy_ids), CHUNK):
        chunk = strategy_ids[start : start + CHUNK]
        values = ", ".join([one_row] * len(chunk))
        params = [value for strategy_id in chunk for value in (strategy_id, snapshot_id)]
        cursor = db.execute_sql(f"{head}{values}{conflict}", params)
        moved.update(i for (i,) in cursor.fetchall())
    return moved


def _existing_strategies(ids: set[int | None]) -> set[int]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return set()
    return {i for (i,) in Strategy.select(Strategy.id).where(Strategy.id.in_(wanted)).tuples()}


def _insert_returning_ids(model: type[Model], rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` (dicts of the same field names); their new ids, in the order of ``rows``.

    peewee renders the one-row statement (table and column names from the model); the rows go to
    the driver as one multi-row ``VALUES`` per chunk (peewee's own rendering of a thousand rows took
    most of a 1,000-coin tick's write). Ids are handed out in insertion order on both databases
    (SQLite's rowid, a PostgreSQL sequence), so sorting the returned ids lines them up with the rows
    whatever order RETURNING yields them in.
    """
    if not rows:
        return []
    given = [model._meta.fields[name] for name in rows[0]]
    one, _ = model.insert({field: None for field in given}).sql()
    head = one.partition(" VALUES ")[0]
    # the columns in the order peewee wrote them (its own, not the dict's)
    by_column = {field.column_name: field for field in given}
    fields = [
        by_column[name.strip().strip('"')] for name in head[head.index("(") + 1 : head.rindex(")")].split(",")
    ]
    param = model._meta.database.param
    # only JSON needs writing out; the drivers take the other values as they are
    converters = [(f.name, f.db_value if isinstance(f, JsonField) else None) for f in fields]
    row_sql = "(" + ", ".join([param] * len(fields)) + ")"
    returning = f' RETURNING "{model._meta.primary_key.column_name}"'
    ids: list[int] = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        params = [
            convert(row[name]) if convert else row[name] for row in chunk for name, convert in converters
        ]
        sql = f"{head} VALUES {', '.join([row_sql] * len(chunk))}{returning}"
        cursor = model._meta.database.execute_sql(sql, params)
        ids.extend(sorted(i for (i,) in cursor.fetchall()))
    if len(ids) != len(rows):
        raise RuntimeError(f"{model._meta.table_name}: {len(rows)} row(s) inserted, {len(ids)} id(s) back")
    return ids


def _alert_row(alert: Alert) -> dict[str, Any]:
    return {
        "strategy": alert.strategy_id,
        "user": alert.user_id,
        "strategy_name": alert.strategy_name,
        "coin_id": alert.coin_id,
        "symbol": alert.symbol,
        "timeframe": alert.timeframe,
        "fired_at": alert.fired_at_ms,
        "bar_open": alert.bar_open_ms,
        "condition": alert.condition,
        "values": dict(alert.values),
        "subject": alert.subject,
        "text": alert.text,
        "short": alert.short,
        "replayed": alert.replayed,
    }


def _alert_of(row: AlertRecord) -> Alert:
    return Alert(
        strategy_id=row.strategy_id,
        user_id=row.user_id,
        strategy_name=row.strategy_name,
        coin_id=row.coin_id,
        symbol=row.symbol,
        timeframe=row.timeframe,
        fired_at_ms=row.fired_at,
        bar_open_ms=row.bar_open,
        condition=row.condition,
        values=row.values,
        subject=row.subject,
        text=row.text,
        deliveries=(),
        replayed=row.replayed,
        short=row.short,
    )


def _delivery_of(row: Delivery) -> DeliveryRow:
    return DeliveryRow(
        id=row.id,
        alert_id=row.alert_id,
        channel=row.channel,
        target=row.target,
        status=row.status,
        attempts=row.attempts,
        next_attempt_ms=row.next_attempt_at,
        key=row.key,
        subject=row.subject,
        text=row.text,
        skipped=row.skipped,
    )


MEMBER_WATERMARK = "scanned:"


def member_watermark(member: str) -> str:
    """The Meta key of a scanner process's scan watermark."""
    return f"{MEMBER_WATERMARK}{member}"[:64]


def prune_member_watermarks(db: Database, live: Iterable[str], before_ms: int) -> list[str]:
    """Delete the scan watermarks of the scanner processes gone for long: not in ``live``, and whose
    last scanned snapshot was taken before ``before_ms`` (or is no longer stored). A member's name
    holds its pid, so a dead process's key would otherwise stay for ever. Returns the keys deleted."""
    keep = {member_watermark(m) for m in live}
    rows = (
        Meta.select(Meta.key, SnapshotRecord.timestamp)
        .join(SnapshotRecord, JOIN.LEFT_OUTER, on=(SnapshotRecord.id == Meta.value.cast("INTEGER")))
        .where(Meta.key.startswith(MEMBER_WATERMARK))
        .tuples()
    )
    gone = [key for key, taken in rows if key not in keep and (taken is None or taken < before_ms)]
    if gone:
        with writing(db):
            Meta.delete().where(Meta.key.in_(gone)).execute()
    return gone
