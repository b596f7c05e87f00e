"""The Dispatcher without the Notifier: lanes per channel, paced destinations, due times, a channel
that raises, stop. A FakeClock moves only when a test moves it; every wait is for an event."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from ubot.clocks import FakeClock
from ubot.notify.channel import RETRY, SENT, Message, Outcome
from ubot.notify.dispatch import Attempt, Dispatcher
from ubot.notify.outbox import Job

WAIT = 10.0
T0 = 1_700_000_000.0


class Recording:
    """A channel that records what it sends, answers ``sent`` (or raises ``error``), and holds the
    sends to ``held`` targets until ``gate`` opens."""

    def __init__(self, name: str, min_interval_s: float = 0.0, error: Exception | None = None) -> None:
        self.name = name
        self.min_interval_s = min_interval_s
        self.error = error
        self.held: set[str] = set()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def destination(self, message: Message) -> str:
        return message.target

    def send(self, message: Message) -> Outcome:
        if message.target in self.held:
            self.entered.set()
            self.gate.wait(WAIT)
        if self.error is not None:
            raise self.error
        return Outcome(SENT)


class Rig:
    def __init__(self, clock: FakeClock, *channels: Recording, senders: int = 2, **options: Any) -> None:
        self.nudged: queue.Queue[None] = queue.Queue()
        self.dispatcher = Dispatcher(
            {c.name: c for c in channels}, clock, lambda: self.nudged.put(None), senders, **options
        )
        self.dispatcher.start()

    def next(self) -> Attempt:
        """The next attempt that ended (waits for its nudge)."""
        try:
            self.nudged.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"no attempt ended within {WAIT} s") from None
        return next(self.dispatcher.ended())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def rig(clock: FakeClock) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(*channels: Recording, **options: Any) -> Rig:
        made.append(Rig(clock, *channels, **options))
        return made[-1]

    yield make
    for r in made:
        r.dispatcher.stop(WAIT)


def job(
    make_message: Callable[..., Message], delivery_id: int, target: str, due_s: float = T0, **kw: Any
) -> Job:
    message = make_message(delivery_id=delivery_id, target=target, **kw)
    return Job(message, user_id=1, attempts=0, due_ms=round(due_s * 1000))


def test_each_attempt_is_prepared_in_its_sender_thread_which_says_when_it_ends(rig, make_message) -> None:
    prepared: list[str] = []
    ended: list[str] = []
    sent: list[Message] = []
    channel = Recording("webhook")
    channel.send = lambda message: sent.append(message) or Outcome(SENT)  # type: ignore[method-assign]

    def prepare(j: Job) -> Message:
        prepared.append(threading.current_thread().name)
        return replace(j.message, secret="read-now")

    r = rig(
        channel, senders=1, prepare=prepare, sender_done=lambda: ended.append(threading.current_thread().name)
    )
    r.dispatcher.submit(job(make_message, 1, "https://a.example"))
    assert r.next().outcome.status == SENT
    assert sent[0].secret == "read-now" and prepared == ["ubot-notify-webhook-0"]
    r.dispatcher.stop(WAIT)
    assert ended == ["ubot-notify-webhook-0"]  # its database connection closed there


def test_a_delivery_that_cannot_be_prepared_is_retried_not_sent(rig, make_message) -> None:
    def prepare(j: Job) -> Message:
        raise OSError("the database is down")

    channel = Recording("webhook")
    r = rig(channel, prepare=prepare)
    r.dispatcher.submit(job(make_message, 1, "https://a.example"))
    attempt = r.next()
    assert attempt.outcome == Outcome(RETRY, "the delivery could not be prepared (OSError); retried later")
    assert not channel.entered.is_set()


def test_a_job_is_sent_and_its_attempt_reported(rig, make_message) -> None:
    r = rig(Recording("webhook"))
    sent = job(make_message, 1, "https://a.example")
    r.dispatcher.submit(sent)
    attempt = r.next()
    assert (attempt.job, attempt.outcome.status, attempt.finished_ms) == (sent, SENT, round(T0 * 1000))
    assert list(r.dispatcher.ended()) == []


def test_a_job_due_later_waits_for_the_clock(rig, clock, make_message) -> None:
    r = rig(Recording("webhook"))
    r.dispatcher.submit(job(make_message, 1, "https://a.example", due_s=T0 + 30))
    assert clock.wait_for_sleeper() == T0 + 30
    assert r.nudged.empty()
    clock.advance(30)
    assert r.next().finished_ms == round((T0 + 30) * 1000)


def test_one_destination_is_paced_and_the_others_do_not_wait(rig, clock, make_message) -> None:
    telegram = Recording("telegram", min_interval_s=1.0)
    r = rig(telegram)
    r.dispatcher.submit(job(make_message, 1, "42", channel="telegram"))
    r.dispatcher.submit(job(make_message, 2, "42", channel="telegram"))
    r.dispatcher.submit(job(make_message, 3, "43", channel="telegram"))
    first = {r.next().job.message.delivery_id, r.next().job.message.delivery_id}
    assert first == {1, 3}  # chat 43 did not wait behind chat 42
    assert clock.wait_for_sleeper() == T0 + 1  # chat 42's pace
    clock.advance(1)
    assert r.next().job.message.delivery_id == 2


def test_a_slow_channel_delays_no_other_channel(rig, make_message) -> None:
    slow, fast = Recording("webhook"), Recording("email")
    slow.held.add("https://slow.example")
    r = rig(slow, fast)
    r.dispatcher.submit(job(make_message, 1, "https://slow.example"))
    assert slow.entered.wait(WAIT)
    r.dispatcher.submit(job(make_message, 2, "a@example.com", channel="email"))
    assert r.next().job.message.delivery_id == 2
    slow.gate.set()
    assert r.next().job.message.delivery_id == 1


def test_a_channel_that_raises_is_a_retry_not_a_dead_thread(rig, make_message) -> None:
    r = rig(Recording("webhook", error=RuntimeError("bug")), senders=1)
    r.dispatcher.submit(job(make_message, 1, "https://a.example"))
    outcome = r.next().outcome
    assert (outcome.status, outcome.detail) == (RETRY, "internal error in the webhook channel (RuntimeError)")
    r.dispatcher.submit(job(make_message, 2, "https://a.example"))
    assert r.next().job.message.delivery_id == 2  # the one sender thread is still there


def test_stop_lets_the_send_in_flight_end_and_ignores_later_submissions(rig, make_message) -> None:
    webhook = Recording("webhook")
    webhook.held.add("https://slow.example")
    r = rig(webhook)
    r.dispatcher.submit(job(make_message, 1, "https://slow.example"))
    assert webhook.entered.wait(WAIT)
    stopping = threading.Thread(target=r.dispatcher.stop, args=(WAIT,))
    stopping.start()
    webhook.gate.set()
    stopping.join(WAIT)
    assert not stopping.is_alive()
    assert [a.job.message.delivery_id for a in r.dispatcher.ended()] == [1]  # waited for
    r.dispatcher.submit(job(make_message, 2, "https://a.example"))  # stays pending in the database
    assert len(r.dispatcher.lanes["webhook"].queues) == 0


def test_one_users_slow_destinations_leave_senders_for_the_others(clock, make_message) -> None:
    """Three senders, two sends per user: alice's three held destinations take two of them, and bob's
    delivery takes the third (without the cap, alice would hold all three and bob would wait)."""
    webhook = Recording("webhook")
    slow = [f"https://slow-{n}.example" for n in range(3)]
    webhook.held.update(slow)
    nudged: queue.Queue[None] = queue.Queue()
    dispatcher = Dispatcher({"webhook": webhook}, clock, lambda: nudged.put(None), 3, sends_per_user=2)
    dispatcher.start()
    try:
        for n, target in enumerate(slow):
            dispatcher.submit(job(make_message, n + 1, target))  # user 1
        bob = Job(
            make_message(delivery_id=9, target="https://bob.example"),
            user_id=2,
            attempts=0,
            due_ms=round(T0 * 1000),
        )
        dispatcher.submit(bob)
        nudged.get(timeout=WAIT)
        assert [a.job for a in dispatcher.ended()] == [bob]
        lane = dispatcher.lanes["webhook"]
        with lane._lock:
            assert (lane.queues.owner_in_flight(1), len(lane.queues)) == (2, 1)  # the third waits
        webhook.gate.set()
        ended = set()
        while len(ended) < 3:
            nudged.get(timeout=WAIT)
            ended.update(a.job.message.delivery_id for a in dispatcher.ended())
        assert ended == {1, 2, 3}
    finally:
        webhook.gate.set()
        dispatcher.stop(WAIT)
