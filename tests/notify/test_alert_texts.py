"""One alert through the Notifier and the real channels to the local fakes, over real sockets: the
text each channel's provider receives is what a person reads (these are the examples of
docs/alerts.md). The alert is the one measured in issue 13: SHIB at 2.61312e-05 USD, a user in
Europe/Berlin, a simulated market, a server with a public URL."""

from __future__ import annotations

import logging

import pytest

from tests.fakes.smtp import FakeSmtp
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FROM, FakeTwilio
from tests.fakes.webhook import FakeWebhook
from tests.support.waits import wait_until
from ubot.actors.notifier import Notifier
from ubot.clocks import FakeClock
from ubot.models.alerts import AlertStore
from ubot.models.tables import Delivery, Strategy, User, UserSettings
from ubot.notify.channels import EmailChannel, TelegramChannel, TwilioChannel, WebhookChannel
from ubot.notify.channels.text import sms_segments
from ubot.notify.channels.webhook import verify
from ubot.notify.messages import Alert, DeliveryTarget, ScanOutcome
from ubot.timeutil import parse_iso_ms

AT = parse_iso_ms("2026-12-04T19:21:35.000Z")
SECRET = "whsec-0123456789abcdef"
PHONE = "+4915112345678"

TEXT = (
    'SHIB (Shiba Inu) is at 0.00002613 USD: your strategy "tg test" fired on 1m.\n'
    "percent_change_24h = -2.92%\n"
    "Condition: price > 0 and percent_change_24h > -100\n"
    "Time: 2026-12-04 20:21:35 CET (Europe/Berlin)\n"
    "Chart: https://ubot.example.com/v1/coins/5994/candles?timeframe=1m\n"
    "Simulated market: these prices are not real."
)
SUBJECT = 'uBot: "tg test" fired for SHIB (Shiba Inu) (simulated market)'
SMS = 'uBot: SHIB 0.00002613 USD, percent_change_24h -2.92%. "tg test" 1m, 20:21 CET. Simulated market'


@pytest.fixture
def fakes():
    with FakeWebhook() as hook, FakeTelegram() as telegram, FakeTwilio() as twilio, FakeSmtp() as smtp:
        yield hook, telegram, twilio, smtp


def test_each_channel_receives_the_words_a_person_reads(db, fakes, caplog) -> None:
    hook, telegram, twilio, smtp = fakes
    caplog.set_level(logging.INFO, logger="ubot.actors.notifier")
    user = User.create(
        username="ada", email="ada@example.com", password_hash="h", created_at=1, password_changed_at=1
    )
    UserSettings.create(user=user, webhook_url=hook.url(), webhook_secret=SECRET, timezone="Europe/Berlin")
    strategy = Strategy.create(
        user=user, name="tg test", condition="price > 0 and percent_change_24h > -100", indicators=[],
        timeframe="1m", top_n=1000, channels=["webhook", "telegram", "sms", "whatsapp", "email"],
        frequency="once_per_bar", cooldown_s=0, enabled=True, created_at=1, updated_at=1,
    )  # fmt: skip
    twilio_options = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": FROM}
    channels = {
        "webhook": WebhookChannel(allow_private_addresses=True, clock=lambda: AT / 1000 + 1),
        "telegram": TelegramChannel(bot_token=TOKEN, base_url=telegram.base_url),
        "sms": TwilioChannel(name="sms", base_url=twilio.base_url, **twilio_options),
        "whatsapp": TwilioChannel(name="whatsapp", base_url=twilio.base_url, **twilio_options),
        "email": EmailChannel(
            host=smtp.host, port=smtp.port, sender="uBot <alerts@ubot.example.com>", security="none"
        ),
    }
    alert = Alert(
        strategy_id=strategy.id, user_id=user.id, strategy_name="tg test", coin_id=5994, symbol="SHIB",
        name="Shiba Inu", price=2.61312e-05, currency="USD", timeframe="1m", fired_at_ms=AT,
        bar_open_ms=AT - AT % 60_000, condition="price > 0 and percent_change_24h > -100",
        values={"price": 2.61312e-05, "percent_change_24h": -2.916}, subject="", text="",
        deliveries=(
            DeliveryTarget("webhook", hook.url()), DeliveryTarget("telegram", "42"),
            DeliveryTarget("sms", PHONE), DeliveryTarget("whatsapp", PHONE),
            DeliveryTarget("email", "ada@example.com"),
        ),
        timezone="Europe/Berlin",
    )  # fmt: skip
    notifier = Notifier.start(
        AlertStore(db),
        channels,
        FakeClock(AT / 1000 + 1),
        public_url="https://ubot.example.com",
        simulated=True,
    )
    try:
        notifier.tell(ScanOutcome(worker=0, tick=1, snapshot_ms=AT, alerts=(alert,)))
        wait_until(
            lambda: {d.status for d in Delivery.select()} == {"sent"} and Delivery.select().count() == 5,
            "the five deliveries sent",
        )
    finally:
        notifier.stop()

    [email] = smtp.messages
    received = email.message()
    assert received["Subject"] == SUBJECT
    body = received.get_content().replace("\r\n", "\n")  # CRLF on the wire
    assert body.rstrip("\n") == TEXT
    [sent] = telegram.sent
    assert sent["text"] == TEXT
    sms, whatsapp = sorted(twilio.messages, key=lambda m: str(m["to"]).startswith("whatsapp:"))
    assert sms["body"] == SMS and sms_segments(SMS) == 1
    assert whatsapp["body"] == TEXT
    [request] = hook.requests
    document = request.json()
    assert document["delivery_id"] == request.header("X-Ubot-Delivery")
    (alert,) = document["alerts"]
    assert (alert["symbol"], alert["subject"], alert["text"]) == ("SHIB", SUBJECT, TEXT)
    assert verify(SECRET, request.header("X-Ubot-Signature"), request.body, now=AT / 1000 + 1)
    assert request.header("X-Ubot-Delivery") == Delivery.get(Delivery.channel == "webhook").key
    log = next(m for m in caplog.messages if m.startswith("alert "))
    assert log.endswith(
        f"user {user.id}, strategy 'tg test' (#{strategy.id}): SHIB at 0.00002613 USD on 1m: "
        "'price > 0 and percent_change_24h > -100' [price=0.00002613, percent_change_24h=-2.92%]"
    )
    print(f"\n[e-mail] Subject: {received['Subject']}\n{body}")
    print(f"[telegram]\n{sent['text']}\n[sms] {sms['body']}\n[whatsapp]\n{whatsapp['body']}\n[log] {log}")
    print(f"[webhook] X-Ubot-Signature: {request.header('X-Ubot-Signature')}")
    print(f"X-Ubot-Delivery: {request.header('X-Ubot-Delivery')}\n{request.body.decode()}")
