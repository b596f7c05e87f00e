"""Verified destinations through the real app and actors, every message over a real socket to a local
fake: the code by e-mail (SMTP), SMS and WhatsApp (Twilio), the Telegram deep link read back with getUpdates
(the webhook's signed request: tests/test_alerts_e2e.py, where local webhooks are allowed). Nothing but the verification goes to a destination before it is verified;
wrong codes are limited; sending is throttled."""

from __future__ import annotations

import re

import pytest
from falcon.testing import TestClient

from tests.fakes.smtp import FakeSmtp
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FROM, FakeTwilio
from tests.fakes.webhook import FakeWebhook
from tests.http.support import assert_error, gateway_of
from tests.http.test_channels_api import login
from ubot.http.app import create_app
from ubot.notify.channels import EmailChannel, TelegramChannel, TwilioChannel, WebhookChannel
from ubot.users.destinations import MAX_ATTEMPTS

pytest.importorskip("ubot.rules")
SECRET = "s" * 24
PUBLIC = "https://ubot.example.org/"
BOT = "ubot_alerts_bot"


@pytest.fixture
def fakes():
    with FakeSmtp() as smtp, FakeTwilio() as twilio, FakeTelegram() as telegram, FakeWebhook() as hook:
        yield smtp, twilio, telegram, hook


@pytest.fixture
def client(served, fakes) -> TestClient:
    smtp, twilio, telegram, _ = fakes
    channels = {
        "webhook": WebhookChannel(allow_private_addresses=True),
        "telegram": TelegramChannel(bot_token=TOKEN, base_url=telegram.base_url, bot_username=BOT),
        **{
            name: TwilioChannel(
                name=name,
                account_sid=ACCOUNT_SID,
                auth_token=AUTH_TOKEN,
                from_number=FROM,
                base_url=twilio.base_url,
                timeout_s=2.0,
            )
            for name in ("sms", "whatsapp")
        },
        "email": EmailChannel(
            host=smtp.host, port=smtp.port, sender="uBot <a@ubot.example.org>", security="none"
        ),
    }
    gateway = gateway_of(served.actors, users=served.actors.users, channels=channels, public_url=PUBLIC)
    return TestClient(create_app(gateway))


def states(client: TestClient, auth: dict[str, str]) -> dict[str, str]:
    settings = client.simulate_get("/v1/me/settings", headers=auth).json
    return {d["channel"]: d["state"] for d in settings["destinations"]}


def code_in(text: str) -> str:
    (code,) = re.findall(r"code(?: is|:) ([0-9]{6})\b", text)
    return code


def test_an_email_address_is_confirmed_by_its_link_without_login(client, fakes) -> None:
    smtp = fakes[0]
    auth = login(client)
    client.simulate_patch("/v1/me/settings", json={"email_to": "bob@example.com"}, headers=auth)
    assert client.simulate_post("/v1/me/destinations/email/verify", headers=auth).status_code == 200
    (received,) = smtp.messages
    text = received.message().get_content()
    (token,) = re.findall(
        r"https://ubot\.example\.org/v1/destinations/confirm\?token=([A-Za-z0-9_-]{43})\r?\n", text
    )
    assert code_in(text)  # the code works too

    # opening the link shows a button: a mail scanner fetching it confirms nothing
    page = client.simulate_get("/v1/destinations/confirm", params={"token": token})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in page.text and "<script" not in page.text
    assert page.headers["cache-control"] == "no-store"
    assert states(client, auth)["email"] == "pending"

    confirmed = client.simulate_post("/v1/destinations/confirm", params={"token": token})  # no login

    assert confirmed.status_code == 200, confirmed.text
    assert "E-mail address confirmed" in confirmed.text and "bob@example.com" in confirmed.text
    assert states(client, auth)["email"] == "verified"
    again = client.simulate_post("/v1/destinations/confirm", params={"token": token})
    assert again.status_code == 422 and "unknown or used" in again.text  # once
    assert_error(client.simulate_post("/v1/destinations/confirm", params={"token": "short"}), 400)
    assert client.simulate_post("/v1/me/channels/email/test", headers=auth).json["status"] == "sent"


def test_an_email_address_gets_only_its_code_until_it_is_confirmed(client, fakes) -> None:
    smtp = fakes[0]
    auth = login(client)
    assert (
        client.simulate_patch(
            "/v1/me/settings", json={"email_to": "bob@example.com"}, headers=auth
        ).status_code
        == 200
    )
    assert states(client, auth)["email"] == "unverified"
    # a test message is refused: nothing but the verification goes there
    body = assert_error(client.simulate_post("/v1/me/channels/email/test", headers=auth), 409)
    assert body["field"] == "channel" and "not verified" in body["description"]
    assert smtp.messages == []

    sent = client.simulate_post("/v1/me/destinations/email/verify", headers=auth)

    assert sent.status_code == 200, sent.text
    assert sent.json["state"] == "pending" and sent.json["expires_at"]
    (received,) = smtp.messages
    assert received.rcpt_tos == ("bob@example.com",)
    code = code_in(received.message().get_content())
    assert states(client, auth)["email"] == "pending"

    confirmed = client.simulate_post("/v1/me/destinations/email/confirm", json={"code": code}, headers=auth)

    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json == {"channel": "email", "target": "bob@example.com", "state": "verified"}
    assert states(client, auth)["email"] == "verified"
    assert client.simulate_post("/v1/me/channels/email/test", headers=auth).json["status"] == "sent"
    assert len(smtp.messages) == 2
    # a changed address is unverified again
    client.simulate_patch("/v1/me/settings", json={"email_to": "ada@example.com"}, headers=auth)
    assert states(client, auth)["email"] == "unverified"


def test_wrong_codes_are_limited(client, fakes) -> None:
    smtp = fakes[0]
    auth = login(client)
    client.simulate_patch("/v1/me/settings", json={"email_to": "ada@example.com"}, headers=auth)
    client.simulate_post("/v1/me/destinations/email/verify", headers=auth)
    code = code_in(smtp.messages[0].message().get_content())
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for left in range(MAX_ATTEMPTS - 1, -1, -1):
        answer = client.simulate_post("/v1/me/destinations/email/confirm", json={"code": wrong}, headers=auth)
        body = assert_error(answer, 422)
        assert body["field"] == "code"
        assert (f"{left} attempt(s) left" if left else "ask for a new one") in body["description"]
    # the right code no longer works either
    answer = client.simulate_post("/v1/me/destinations/email/confirm", json={"code": code}, headers=auth)
    assert f"{MAX_ATTEMPTS} wrong codes" in assert_error(answer, 422)["description"]
    assert states(client, auth)["email"] == "pending"
    malformed = client.simulate_post("/v1/me/destinations/email/confirm", json={"code": "12ab"}, headers=auth)
    assert assert_error(malformed, 400)["field"] == "code"


def test_verifications_are_throttled_per_destination(client, fakes) -> None:
    twilio = fakes[1]
    auth = login(client)
    client.simulate_patch("/v1/me/settings", json={"sms_to": "+4915112345678"}, headers=auth)
    assert client.simulate_post("/v1/me/destinations/sms/verify", headers=auth).status_code == 200
    again = client.simulate_post("/v1/me/destinations/sms/verify", headers=auth)
    body = assert_error(again, 429)
    assert "less than 60 s ago" in body["description"]
    assert 1 <= int(again.headers["retry-after"]) <= 60
    (message,) = twilio.messages
    assert message["to"] == "+4915112345678"
    code = code_in(str(message["body"]))
    confirmed = client.simulate_post("/v1/me/destinations/sms/confirm", json={"code": code}, headers=auth)
    assert confirmed.json["state"] == "verified"


def test_a_whatsapp_number_is_verified_by_the_code_sent_to_it(client, fakes) -> None:
    """WhatsApp as SMS: a 6-digit code, over WhatsApp (``whatsapp:`` numbers at Twilio), and nothing
    else to the number until the code is given back."""
    twilio = fakes[1]
    auth = login(client)
    client.simulate_patch("/v1/me/settings", json={"whatsapp_to": "+4915112345679"}, headers=auth)
    sent = client.simulate_post("/v1/me/destinations/whatsapp/verify", headers=auth)
    assert (sent.status_code, sent.json["state"]) == (200, "pending"), sent.text
    assert client.simulate_post("/v1/me/channels/whatsapp/test", headers=auth).status_code == 409
    (message,) = twilio.messages
    assert (message["to"], message["from"]) == ("whatsapp:+4915112345679", f"whatsapp:{FROM}")
    code = code_in(str(message["body"]))
    confirmed = client.simulate_post(
        "/v1/me/destinations/whatsapp/confirm", json={"code": code}, headers=auth
    )
    assert confirmed.json["state"] == "verified" and states(client, auth)["whatsapp"] == "verified"
    assert client.simulate_post("/v1/me/channels/whatsapp/test", headers=auth).json["status"] == "sent"
    assert [m["to"] for m in twilio.messages] == ["whatsapp:+4915112345679"] * 2


def test_a_premium_rate_number_is_refused_naming_the_field(client) -> None:
    auth = login(client)
    answer = client.simulate_patch("/v1/me/settings", json={"sms_to": "+19005550199"}, headers=auth)
    body = assert_error(answer, 422)
    assert body["field"] == "sms_to" and "NANP 900 premium-rate" in body["description"]


def test_the_telegram_deep_link_links_the_chat_that_sends_it(client, fakes, served) -> None:
    telegram = fakes[2]
    auth = login(client)
    # @channel names are refused: nobody proves to own a channel by typing its name
    named = client.simulate_patch("/v1/me/settings", json={"telegram_chat_id": "@news"}, headers=auth)
    assert assert_error(named, 400)["field"] == "telegram_chat_id"

    started = client.simulate_post("/v1/me/destinations/telegram/verify", headers=auth)

    assert started.status_code == 200, started.text
    link = started.json["link"]
    assert link.startswith(f"https://t.me/{BOT}?start=")
    token = link.rsplit("=", 1)[1]
    users = served.actors.users.proxy()
    poller = TelegramChannel(bot_token=TOKEN, base_url=telegram.base_url).updates(
        lambda c, t: users.manager.telegram_message(c, t).get()
    )
    telegram.user_sends(-77, "/start not-a-token")  # an unknown chat: its answer cannot be sent
    telegram.user_sends(42, f"/start {token}")

    assert poller.poll() == 1
    assert poller.poll() == 0  # each update is read once
    assert telegram.texts_to(42)[0].startswith("Linked: this chat gets the alerts of ada")
    assert telegram.offsets[-1] == poller.offset

    settings = client.simulate_get("/v1/me/settings", headers=auth).json
    assert settings["telegram_chat_id"] == "42"
    assert states(client, auth)["telegram"] == "verified"
    assert client.simulate_post("/v1/me/channels/telegram/test", headers=auth).json["status"] == "sent"
    assert [m["chat"]["id"] for m in telegram.sent] == [42, 42]  # the bot's answer, then the test
    # a used link does not link another chat
    telegram.user_sends(-1001234567890, f"/start {token}")
    assert poller.poll() == 1
    assert "link is unknown, used or has expired" in telegram.texts_to(-1001234567890)[0]
    assert client.simulate_get("/v1/me/settings", headers=auth).json["telegram_chat_id"] == "42"


def test_strategies_say_which_channels_are_not_verified(client, fakes) -> None:
    auth = login(client)
    client.simulate_patch("/v1/me/settings", json={"email_to": "ada@example.com"}, headers=auth)
    body = {"name": "dip", "condition": "price > 1", "timeframe": "1h", "top_n": 5, "channels": ["email"]}
    created = client.simulate_post("/v1/me/strategies", json=body, headers=auth)
    assert created.status_code == 201, created.text
    assert created.json["unverified"] == ["email"]
    listed = client.simulate_get("/v1/channels").json["channels"]
    assert {c["name"]: c["verified_by"] for c in listed}[
        "email"
    ] == "a 6-digit code sent by e-mail, or its link"
