"""Real messages, as the providers receive them: one tick's alerts of a strategy through a real
Notifier and the five real channels to the local fakes (webhook, Telegram, Twilio SMS and WhatsApp,
SMTP), over real sockets, and what each fake received, as text.

These are the samples of docs/alerts.md: ``tests/notify/test_doc_samples.py`` checks that the
documentation shows what is sent, and ``python bench/alerts.py --samples`` prints them (or writes
them into the documentation with ``--write``). The alerts are the ones measured in issue 13: a user
``ada`` in Europe/Berlin, a server with ``[http] public_url = https://ubot.example.com`` on the
simulated market, at 2026-12-04 19:21:35 UTC.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from peewee import Database

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
from ubot.notify.messages import Alert, DeliveryTarget, ScanOutcome
from ubot.timeutil import parse_iso_ms

AT = parse_iso_ms("2026-12-04T19:21:35.000Z")
SECRET = "whsec-0123456789abcdef"
PHONE = "+4915112345678"
CHANNELS = ("email", "telegram", "whatsapp", "sms", "webhook")
PUBLIC_URL = "https://ubot.example.com"
#: What a sample shows instead of the webhook's ``delivery_id`` (random, different on every delivery).
DELIVERY_ID = "<32 hex digits, different for every delivery>"

Fakes = tuple[FakeWebhook, FakeTelegram, FakeTwilio, FakeSmtp]


@contextmanager
def running_fakes() -> Iterator[Fakes]:
    with FakeWebhook() as hook, FakeTelegram() as telegram, FakeTwilio() as twilio, FakeSmtp() as smtp:
        yield hook, telegram, twilio, smtp


def owner_with_strategy(
    hook: FakeWebhook, name: str, condition: str, timeframe: str, template: str | None = None
) -> tuple[User, Strategy]:
    """Ada (in Europe/Berlin, a signed webhook) and her strategy on every channel."""
    user = User.create(
        username="ada", email="ada@example.com", password_hash="h", created_at=1, password_changed_at=1
    )
    UserSettings.create(user=user, webhook_url=hook.url(), webhook_secret=SECRET, timezone="Europe/Berlin")
    strategy = Strategy.create(
        user=user, name=name, condition=condition, indicators=[], timeframe=timeframe, top_n=1000,
        channels=["webhook", "telegram", "sms", "whatsapp", "email"], frequency="once_per_bar",
        cooldown_s=0, enabled=True, created_at=1, updated_at=1, template=template,
    )  # fmt: skip
    return user, strategy


def real_channels(fakes: Fakes) -> dict:
    """The five real channels, on the fakes."""
    _, telegram, twilio, smtp = fakes
    twilio_options = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": FROM}
    return {
        "webhook": WebhookChannel(allow_private_addresses=True, clock=lambda: AT / 1000 + 1),
        "telegram": TelegramChannel(bot_token=TOKEN, base_url=telegram.base_url),
        "sms": TwilioChannel(name="sms", base_url=twilio.base_url, **twilio_options),
        "whatsapp": TwilioChannel(name="whatsapp", base_url=twilio.base_url, **twilio_options),
        "email": EmailChannel(
            host=smtp.host, port=smtp.port, sender="uBot <alerts@ubot.example.com>", security="none"
        ),
    }


def every_target(hook: FakeWebhook) -> tuple[DeliveryTarget, ...]:
    return (
        DeliveryTarget("webhook", hook.url()), DeliveryTarget("telegram", "42"),
        DeliveryTarget("sms", PHONE), DeliveryTarget("whatsapp", PHONE),
        DeliveryTarget("email", "ada@example.com"),
    )  # fmt: skip


def deliver(db: Database, channels: Mapping[str, Any], alerts: tuple[Alert, ...]) -> None:
    """One tick's alerts through a Notifier on the real channels, for a server with a public URL on the
    simulated market, until the five deliveries (one per channel) are sent."""
    notifier = Notifier.start(
        AlertStore(db),
        channels,
        FakeClock(AT / 1000 + 1),
        public_url=PUBLIC_URL,
        simulated=True,
    )
    try:
        notifier.tell(ScanOutcome(worker=0, tick=1, snapshot_ms=AT, alerts=alerts))
        wait_until(
            lambda: {d.status for d in Delivery.select()} == {"sent"} and Delivery.select().count() == 5,
            "one delivery per channel, sent",
        )
    finally:
        notifier.stop()


# -- the samples ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coin:
    coin_id: int
    symbol: str
    name: str
    price: float
    rank: int
    values: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    """A strategy and the coins it fires on in one tick (in the order a scan may give them)."""

    strategy: str
    condition: str
    timeframe: str
    coins: tuple[Coin, ...]
    template: str | None = None


SHIB = Coin(5994, "SHIB", "Shiba Inu", 2.61312e-05, 12, {"price": 2.61312e-05, "percent_change_24h": -2.916})
DIP = "{symbol} ({name}) dipped to {price} {currency}: 24h {value:percent_change_24h}, RSI {value:rsi(14):.1f}\n{link}"
SAMPLES: dict[str, Sample] = {
    "single": Sample("tg test", "price > 0 and percent_change_24h > -100", "1m", (SHIB,)),
    "batch": Sample(
        "majors up",
        "percent_change_1h > 2",
        "1h",
        (
            Coin(5994, "SHIB", "Shiba Inu", 2.61312e-05, 12, {"percent_change_1h": 2.916}),
            Coin(1027, "ETH", "Ethereum", 3101.5, 2, {"percent_change_1h": 3.4}),
            Coin(1, "BTC", "Bitcoin", 67432.123, 1, {"percent_change_1h": 2.1}),
            Coin(5426, "SOL", "Solana", 142.31, 5, {"percent_change_1h": 5.0}),
        ),
    ),
    "templated": Sample(
        "rsi dip",
        "rsi(14) < 30 and percent_change_24h < -5",
        "1h",
        (Coin(1027, "ETH", "Ethereum", 2874.456, 2, {"rsi(14)": 27.3418, "percent_change_24h": -6.214}),),
        template=DIP,
    ),
    "templated batch": Sample(
        "rsi dip",
        "rsi(14) < 30 and percent_change_24h < -5",
        "1h",
        (
            Coin(74, "DOGE", "Dogecoin", 0.3817, 8, {"rsi(14)": 24.05, "percent_change_24h": -9.5}),
            Coin(1027, "ETH", "Ethereum", 2874.456, 2, {"rsi(14)": 27.3418, "percent_change_24h": -6.214}),
            Coin(5426, "SOL", "Solana", 131.2, 5, {"rsi(14)": 29.9, "percent_change_24h": -7.0}),
        ),
        template=DIP,
    ),
}


def alerts_of(
    sample: Sample, user: User, strategy: Strategy, targets: tuple[DeliveryTarget, ...]
) -> tuple[Alert, ...]:
    """The alerts a Scanner worker raises for ``sample`` (``ubot/scan/worker.py``: not yet worded)."""
    bar = {"1m": 60_000, "1h": 3_600_000}[sample.timeframe]
    return tuple(
        Alert(
            strategy_id=strategy.id,
            user_id=user.id,
            strategy_name=sample.strategy,
            coin_id=coin.coin_id,
            symbol=coin.symbol,
            name=coin.name,
            price=coin.price,
            currency="USD",
            timeframe=sample.timeframe,
            fired_at_ms=AT,
            bar_open_ms=AT - AT % bar,
            condition=sample.condition,
            values=dict(coin.values),
            subject="",
            text="",
            deliveries=targets,
            timezone="Europe/Berlin",
            rank=coin.rank,
            template=strategy.template or "",
        )
        for coin in sample.coins
    )


def received(db: Database, sample: Sample) -> dict[str, str]:
    """``sample``'s tick through the real Notifier and channels: channel -> what its fake received,
    as a person sees it (an e-mail with its subject; the webhook's body indented, its
    ``delivery_id`` shown as :data:`DELIVERY_ID`)."""
    with running_fakes() as fakes:
        hook, telegram, twilio, smtp = fakes
        user, strategy = owner_with_strategy(
            hook, sample.strategy, sample.condition, sample.timeframe, sample.template
        )
        deliver(db, real_channels(fakes), alerts_of(sample, user, strategy, every_target(hook)))
        [email] = smtp.messages
        message = email.message()
        body = message.get_content().replace("\r\n", "\n").rstrip("\n")  # CRLF on the wire
        [sent] = telegram.sent
        sms, whatsapp = sorted(twilio.messages, key=lambda m: str(m["to"]).startswith("whatsapp:"))
        [request] = hook.requests
        document = request.json()
        assert document["delivery_id"] == request.header("X-Ubot-Delivery")
        document["delivery_id"] = DELIVERY_ID
        return {
            "email": f"Subject: {message['Subject']}\n\n{body}",
            "telegram": sent["text"],
            "whatsapp": whatsapp["body"],
            "sms": sms["body"],
            "webhook": json.dumps(document, indent=2, ensure_ascii=False),
        }


# -- the samples in the documentation -------------------------------------------------------------

#: ``<!-- sample: templated telegram -->`` and the fenced block right after it.
MARKED = re.compile(
    r"<!-- sample: (?P<sample>[a-z ]+?) (?P<channel>[a-z]+) -->\n+```[a-z]*\n(?P<text>.*?)\n```", re.S
)


def documented(markdown: str) -> dict[tuple[str, str], str]:
    """(sample, channel) -> the text a document shows for it."""
    return {(m["sample"], m["channel"]): m["text"] for m in MARKED.finditer(markdown)}


def rewritten(markdown: str, samples: Mapping[tuple[str, str], str]) -> str:
    """``markdown`` with each marked block replaced by ``samples``' text (kept when not given)."""

    def block(match: re.Match) -> str:
        said = samples.get((match["sample"], match["channel"]), match["text"])
        start = match.start("text") - match.start()
        return match.group()[:start] + said + "\n```"

    return MARKED.sub(block, markdown)
