"""Slow and hostile receivers (issue 12): every channel's attempt ends by its deadline whatever the far
end does (a status line, then one byte every so often: no read ever times out), an answer that does
not end is read only up to the cap, one user's slow receivers leave senders for the others, and a
stop cuts the attempts in flight instead of waiting for their receivers.

Over real sockets against the local fakes (``Drip``, ``Flood``, an SMTP server that drips its
replies). The deadlines here are short (:data:`DEADLINE_S`), so the tests that need one to pass
wait for a real deadline; they assert what happened, never how long it took. Every drip would last
minutes if it were not cut, and a fake's drip ends when the fake stops.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pykka
import pytest
import requests

from tests.fakes.smtp import FakeSmtp
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FROM, FakeTwilio
from tests.fakes.webhook import Drip, FakeWebhook, Flood, Reply, status
from tests.notify.test_notifier_actor import T0, Running, alert, delivery, hook, notifier_threads, scan
from tests.support.waits import wait_until
from ubot.clocks import FakeClock
from ubot.models.tables import Delivery, Strategy, User
from ubot.notify.channel import RETRY, SENT, Message
from ubot.notify.channels import EmailChannel, TelegramChannel, TwilioChannel, WebhookChannel
from ubot.notify.channels import webhook as webhook_module
from ubot.notify.channels.http import read_body

DEADLINE_S = 0.5
WAIT = 10.0
#: A drip that would last 2 minutes: far beyond any wait of these tests.
SLOW = Drip(every_s=0.1, count=1200)


def cut_at_the_deadline(detail: str, seconds: float = DEADLINE_S) -> bool:
    return f"no complete answer within {seconds:g} s" in detail and "attempt_deadline_s" in detail


# -- every channel's attempt ends by its deadline ---------------------------------------------------


def test_a_dripping_webhook_receiver_is_cut_at_the_deadline(make_message: Callable[..., Message]) -> None:
    with FakeWebhook() as receiver:
        receiver.script(SLOW)
        channel = WebhookChannel(timeout_s=5.0, deadline_s=DEADLINE_S, allow_private_addresses=True)
        outcome = channel.send(make_message(target=receiver.url()))
    assert outcome.status == RETRY
    assert outcome.detail.startswith(f"the webhook http://127.0.0.1:{receiver.port}: ")
    assert cut_at_the_deadline(outcome.detail), outcome.detail


def test_a_dripping_webhook_receiver_over_tls_is_cut_at_the_deadline(certificate, make_message) -> None:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(certificate[0])
    channel = WebhookChannel(
        timeout_s=5.0, deadline_s=DEADLINE_S, allow_private_addresses=True, session=session
    )
    with FakeWebhook(certificate=certificate) as receiver:
        receiver.script(SLOW)
        outcome = channel.send(make_message(target=f"https://127.0.0.1:{receiver.port}/hook"))
    assert outcome.status == RETRY and cut_at_the_deadline(outcome.detail), outcome


def test_a_kept_alive_connection_is_watched_by_the_next_attempt_too(make_message) -> None:
    with FakeWebhook() as receiver:
        receiver.script(Reply(200, "ok"), SLOW)
        channel = WebhookChannel(timeout_s=5.0, deadline_s=DEADLINE_S, allow_private_addresses=True)
        first = channel.send(make_message(target=receiver.url()))
        second = channel.send(make_message(target=receiver.url()))
    assert first.status == SENT
    assert second.status == RETRY and cut_at_the_deadline(second.detail), second


def test_the_guarded_webhook_gives_up_a_slow_name_lookup_at_the_deadline(monkeypatch, make_message) -> None:
    """The receiver's own DNS server answers slowly: a lookup cannot be cut like a socket, so it is
    left behind (it ends by itself) and the attempt ends at its deadline."""
    release = threading.Event()
    real_resolve = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == "slow-dns.example.test":
            release.wait(WAIT)
        return real_resolve(host, *args, **kwargs)

    monkeypatch.setattr(webhook_module.socket, "getaddrinfo", resolve)
    channel = WebhookChannel(timeout_s=5.0, deadline_s=DEADLINE_S)
    try:
        outcome = channel.send(make_message(target="https://slow-dns.example.test/hook"))
    finally:
        release.set()
    assert outcome.status == RETRY and cut_at_the_deadline(outcome.detail), outcome


def test_a_dripping_telegram_api_is_cut_at_the_deadline(make_message) -> None:
    with FakeTelegram() as api:
        api.script(SLOW)
        channel = TelegramChannel(
            bot_token=TOKEN, base_url=api.base_url, timeout_s=5.0, deadline_s=DEADLINE_S
        )
        outcome = channel.send(make_message(channel="telegram", target="42"))
    assert outcome.status == RETRY
    assert outcome.detail.startswith("Telegram: ") and cut_at_the_deadline(outcome.detail), outcome
    assert TOKEN not in outcome.detail


def test_a_dripping_twilio_api_is_cut_at_the_deadline(make_message) -> None:
    with FakeTwilio() as api:
        api.script(SLOW)
        channel = TwilioChannel(
            name="sms",
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            from_number=FROM,
            base_url=api.base_url,
            timeout_s=5.0,
            deadline_s=DEADLINE_S,
        )
        outcome = channel.send(make_message(channel="sms", target="+15551234567"))
    assert outcome.status == RETRY
    assert outcome.detail.startswith("Twilio: ") and cut_at_the_deadline(outcome.detail), outcome


def test_a_dripping_smtp_server_is_cut_at_the_deadline(make_message) -> None:
    """Each reply comes one byte every 0.1 s (the banner alone takes 3 s, a session about 30 s)."""
    with FakeSmtp(drip_s=0.1) as smtp:
        channel = EmailChannel(
            host=smtp.host,
            port=smtp.port,
            sender="alerts@ubot.example.org",
            security="none",
            timeout_s=5.0,
            deadline_s=DEADLINE_S,
        )
        outcome = channel.send(make_message(channel="email", target="ada@example.com"))
    assert outcome.status == RETRY
    assert outcome.detail.startswith(f"the SMTP server 127.0.0.1:{smtp.port}: "), outcome
    assert cut_at_the_deadline(outcome.detail), outcome
    assert smtp.messages == []


# -- the answer's body is read up to the cap --------------------------------------------------------


def test_an_answer_that_does_not_end_is_read_up_to_the_cap_only(make_message) -> None:
    """200 and then gigabytes: the channel reads 16 KiB and is done (without the cap it would read
    until the deadline cut it, and retry)."""
    with FakeWebhook() as receiver:
        receiver.script(Flood(total=16 * 1024**3), Flood(total=16 * 1024**3, status=503))
        channel = WebhookChannel(deadline_s=2.0, max_answer_bytes=16384, allow_private_addresses=True)
        accepted = channel.send(make_message(target=receiver.url()))
        refused = channel.send(make_message(target=receiver.url()))
    assert accepted.status == SENT, accepted
    assert refused.status == RETRY and refused.detail.endswith("HTTP 503 Flood: " + "x" * 119 + "…"), refused
    assert receiver.flooded < 64 * 1024**2  # what the socket buffers took, nothing like the whole


def test_read_body_keeps_the_first_limit_bytes() -> None:
    with FakeWebhook() as receiver:
        receiver.script(Flood(total=1024**3), status(200, "short"))
        with requests.post(receiver.url(), stream=True, timeout=WAIT) as flooding:
            assert len(read_body(flooding, 1000)) == 1000
        with requests.post(receiver.url(), stream=True, timeout=WAIT) as short:
            assert read_body(short, 1000) == b"short"


# -- through the real Notifier ----------------------------------------------------------------------


def user_with_strategy(n: int) -> Strategy:
    user = User.create(
        username=f"user{n}",
        email=f"user{n}@example.com",
        password_hash="h",
        created_at=1,
        password_changed_at=1,
    )
    return Strategy.create(
        user=user,
        name=f"strategy {n}",
        condition="rsi(14) < 30",
        indicators=["rsi(14)"],
        timeframe="1h",
        top_n=10,
        channels=["webhook"],
        frequency="once_per_bar",
        cooldown_s=0,
        enabled=True,
        created_at=1,
        updated_at=1,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def receivers() -> Iterator[tuple[FakeWebhook, FakeWebhook]]:
    """Four dripping receivers (one fake, four URLs) and a fresh one; the actors stopped at the end."""
    with FakeWebhook() as slow, FakeWebhook() as fresh:
        slow.script(*[SLOW] * 4)
        yield slow, fresh
        pykka.ActorRegistry.stop_all(block=True, timeout=WAIT * 4)


def test_four_dripping_receivers_do_not_hold_a_fifth_users_webhook(db, clock, receivers) -> None:
    """The issue's reproduction: four users' receivers drip and take all four webhook senders; a
    fifth user's webhook is sent as soon as the first of their attempts reaches its deadline, and
    the four are retried later with the reason."""
    slow, fresh = receivers
    strategies = [user_with_strategy(n) for n in range(5)]
    channel = WebhookChannel(timeout_s=5.0, deadline_s=DEADLINE_S, allow_private_addresses=True)
    running = Running(db, clock, [channel])

    running.tell(scan(*(alert(s, hook(slow.url(f"/user{n}"))) for n, s in enumerate(strategies[:4]))))
    wait_until(lambda: len(slow.requests) == 4, "the four receivers to hold the four senders")
    running.tell(scan(alert(strategies[4], hook(fresh.url())), tick=2))

    written = dict(running.written() for _ in range(5))
    assert sorted(written.values()) == [RETRY] * 4 + [SENT]
    (fifth,) = [d for d, status_ in written.items() if status_ == SENT]
    assert delivery(fifth).alert.user_id == strategies[4].user_id
    assert len(fresh.requests) == 1
    for slow_delivery in (d for d, status_ in written.items() if status_ == RETRY):
        row = delivery(slow_delivery)
        assert (row.status, row.attempts) == ("pending", 1)
        assert cut_at_the_deadline(row.detail), row.detail


def test_a_stop_cuts_the_attempts_in_flight_and_leaves_them_pending(db, clock, receivers) -> None:
    """A deadline of a minute, four receivers dripping: the stop does not wait for them; nothing is
    counted as an attempt, the four stay pending for the next start, and no sender thread is left."""
    slow, _ = receivers
    strategies = [user_with_strategy(n) for n in range(4)]
    channel = WebhookChannel(timeout_s=5.0, deadline_s=60.0, allow_private_addresses=True)
    running = Running(db, clock, [channel])
    running.tell(scan(*(alert(s, hook(slow.url(f"/user{n}"))) for n, s in enumerate(strategies))))
    wait_until(lambda: len(slow.requests) == 4, "the four receivers to hold the four senders")

    running.stop()

    assert notifier_threads() == set()  # every sender came back: none was left stuck in a drip
    assert sorted((d.status, d.attempts) for d in Delivery.select()) == [("pending", 0)] * 4
