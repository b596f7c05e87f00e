"""One alert through the Notifier and the real channels to the local fakes, over real sockets: the
text each channel's provider receives is what a person reads (these are the examples of
docs/alerts.md). The alert is the one measured in issue 13: SHIB at 2.61312e-05 USD, a user in
Europe/Berlin, a simulated market, a server with a public URL."""

from __future__ import annotations

import logging

import pytest

from tests.support.alert_samples import (
    AT,
    SAMPLES,
    SECRET,
    alerts_of,
    deliver,
    every_target,
    owner_with_strategy,
    real_channels,
    running_fakes,
)
from ubot.models.tables import Delivery
from ubot.notify.channels.text import sms_segments
from ubot.notify.channels.webhook import verify
from ubot.notify.messages import Alert

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
    with running_fakes() as running:
        yield running


def test_each_channel_receives_the_words_a_person_reads(db, fakes, caplog) -> None:
    hook, telegram, twilio, smtp = fakes
    caplog.set_level(logging.INFO, logger="ubot.actors.notifier")
    user, strategy = owner_with_strategy(hook, "tg test", "price > 0 and percent_change_24h > -100", "1m")
    channels = real_channels(fakes)
    alert = Alert(
        strategy_id=strategy.id, user_id=user.id, strategy_name="tg test", coin_id=5994, symbol="SHIB",
        name="Shiba Inu", price=2.61312e-05, currency="USD", timeframe="1m", fired_at_ms=AT,
        bar_open_ms=AT - AT % 60_000, condition="price > 0 and percent_change_24h > -100",
        values={"price": 2.61312e-05, "percent_change_24h": -2.916}, subject="", text="",
        deliveries=every_target(hook),
        timezone="Europe/Berlin",
    )  # fmt: skip
    deliver(db, channels, (alert,))

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


BATCH_SUBJECT = 'uBot: "majors up" fired for 4 coins: BTC, ETH, SOL and 1 more (simulated market)'
BATCH_TEXT = (
    'Your strategy "majors up" fired on 1h for 4 coins:\n'
    "BTC (Bitcoin) 67,432.12 USD, percent_change_1h = +2.10% https://ubot.example.com/v1/coins/1/candles?timeframe=1h\n"
    "ETH (Ethereum) 3,101.50 USD, percent_change_1h = +3.40% https://ubot.example.com/v1/coins/1027/candles?timeframe=1h\n"
    "SOL (Solana) 142.31 USD, percent_change_1h = +5.00% https://ubot.example.com/v1/coins/5426/candles?timeframe=1h\n"
    "SHIB (Shiba Inu) 0.00002613 USD, percent_change_1h = +2.92% https://ubot.example.com/v1/coins/5994/candles?timeframe=1h\n"
    "Condition: percent_change_1h > 2\n"
    "Time: 2026-12-04 20:21:35 CET (Europe/Berlin)\n"
    "Simulated market: these prices are not real."
)
BATCH_SMS = 'uBot: "majors up" 1h: BTC 67,432.12, ETH 3,101.50, SOL 142.31, SHIB 0.00002613, 20:21 CET. Simulated market'


def test_a_strategys_coins_of_one_tick_are_one_message_on_each_channel(db, fakes) -> None:
    hook, telegram, twilio, smtp = fakes
    user, strategy = owner_with_strategy(hook, "majors up", "percent_change_1h > 2", "1h")
    channels = real_channels(fakes)
    targets = every_target(hook)
    coins = [  # as the scan gives them: not by rank
        (5994, "SHIB", "Shiba Inu", 2.61312e-05, 2.916, 12),
        (1027, "ETH", "Ethereum", 3101.5, 3.4, 2),
        (1, "BTC", "Bitcoin", 67432.123, 2.1, 1),
        (5426, "SOL", "Solana", 142.31, 5.0, 5),
    ]
    alerts = tuple(
        Alert(
            strategy_id=strategy.id,
            user_id=user.id,
            strategy_name="majors up",
            coin_id=coin_id,
            symbol=symbol,
            name=name,
            price=price,
            currency="USD",
            timeframe="1h",
            fired_at_ms=AT,
            bar_open_ms=AT - AT % 3_600_000,
            condition="percent_change_1h > 2",
            values={"percent_change_1h": change},
            subject="",
            text="",
            deliveries=targets,
            timezone="Europe/Berlin",
            rank=rank,
        )  # fmt: skip
        for coin_id, symbol, name, price, change, rank in coins
    )
    deliver(db, channels, alerts)

    [email] = smtp.messages
    received = email.message()
    assert received["Subject"] == BATCH_SUBJECT
    assert received.get_content().replace("\r\n", "\n").rstrip("\n") == BATCH_TEXT
    [sent] = telegram.sent
    assert sent["text"] == BATCH_TEXT
    sms, whatsapp = sorted(twilio.messages, key=lambda m: str(m["to"]).startswith("whatsapp:"))
    assert sms["body"] == BATCH_SMS and sms_segments(BATCH_SMS) == 1
    assert whatsapp["body"] == BATCH_TEXT
    [request] = hook.requests
    document = request.json()
    assert [a["symbol"] for a in document["alerts"]] == ["BTC", "ETH", "SOL", "SHIB"]
    assert (document["strategy_name"], document["timeframe"], document["skipped"]) == ("majors up", "1h", 0)
    assert verify(SECRET, request.header("X-Ubot-Signature"), request.body, now=AT / 1000 + 1)
    print(f"\n[e-mail] Subject: {received['Subject']}\n{BATCH_TEXT}\n[sms] {sms['body']}")
    print(f"[webhook] X-Ubot-Delivery: {request.header('X-Ubot-Delivery')}\n{request.body.decode()[:400]}…")


TEMPLATED_TELEGRAM = (
    "ETH (Ethereum) dipped to 2,874.46 USD: 24h -6.21%, RSI 27.3\n"
    "https://ubot.example.com/v1/coins/1027/candles?timeframe=1h\n"
    "Simulated market: these prices are not real."
)


def test_a_templated_strategys_message_is_its_template_on_every_channel(db, fakes) -> None:
    hook, telegram, twilio, smtp = fakes
    sample = SAMPLES["templated"]
    user, strategy = owner_with_strategy(
        hook, sample.strategy, sample.condition, sample.timeframe, sample.template
    )

    deliver(db, real_channels(fakes), alerts_of(sample, user, strategy, every_target(hook)))

    [sent] = telegram.sent
    assert sent["text"] == TEMPLATED_TELEGRAM
    [request] = hook.requests
    (alert,) = request.json()["alerts"]
    assert (alert["symbol"], alert["text"]) == ("ETH", TEMPLATED_TELEGRAM)
    assert alert["subject"] == 'uBot: "rsi dip" fired for ETH (Ethereum) (simulated market)'  # uBot's own
    assert verify(SECRET, request.header("X-Ubot-Signature"), request.body, now=AT / 1000 + 1)
    sms, whatsapp = sorted(twilio.messages, key=lambda m: str(m["to"]).startswith("whatsapp:"))
    assert sms["body"] == TEMPLATED_TELEGRAM.rsplit("\n", 1)[0] + "\nSimulated market"
    assert sms_segments(sms["body"]) == 1
    assert whatsapp["body"] == TEMPLATED_TELEGRAM
    [email] = smtp.messages
    assert email.message().get_content().replace("\r\n", "\n").rstrip("\n") == TEMPLATED_TELEGRAM
