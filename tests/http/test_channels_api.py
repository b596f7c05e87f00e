"""GET /v1/channels and POST /v1/me/channels/{channel}/test through the real app and actors, the test
message sent over a real socket to the fake Telegram."""

from __future__ import annotations

import pytest
from falcon.testing import TestClient

from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.http.support import assert_error, gateway_of
from ubot.http.app import create_app
from ubot.notify.channels import TelegramChannel, WebhookChannel
from ubot.users.manager import TEST_MESSAGES

pytest.importorskip("ubot.rules")
PASSWORD = "correct horse battery 9"
SECRET = "s" * 24


@pytest.fixture
def telegram():
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def client(served, telegram) -> TestClient:
    channels = {
        "webhook": WebhookChannel(allow_private_addresses=True),
        "telegram": TelegramChannel(
            bot_token=TOKEN, base_url=telegram.base_url, bot_username="ubot_alerts_bot"
        ),
    }
    gateway = gateway_of(served.actors, users=served.actors.users, channels=channels)
    return TestClient(create_app(gateway))


def login(client: TestClient) -> dict[str, str]:
    body = {"username": "ada", "email": "ada@example.com", "password": PASSWORD}
    assert client.simulate_post("/v1/users", json=body).status_code == 201
    token = client.simulate_post("/v1/sessions", json={"username": "ada", "password": PASSWORD}).json["token"]
    return {"Authorization": f"Bearer {token}"}


def link_chat(client: TestClient, auth: dict[str, str], served, telegram: FakeTelegram, chat: int) -> None:
    """Link ``chat`` as the user's verified Telegram destination: the deep link's /start, read back."""
    link = client.simulate_post("/v1/me/destinations/telegram/verify", headers=auth).json["link"]
    users = served.actors.users.proxy()
    poller = TelegramChannel(bot_token=TOKEN, base_url=telegram.base_url).updates(
        lambda c, t: users.manager.telegram_message(c, t).get()
    )
    telegram.user_sends(chat, f"/start {link.rsplit('=', 1)[1]}")
    assert poller.poll() is not None
    assert client.simulate_get("/v1/me/settings", headers=auth).json["telegram_chat_id"] == str(chat)
    with telegram.lock:
        telegram.sent.clear()  # the bot's "Linked" answer: not what these tests count


def test_the_channels_this_server_has_are_listed(client) -> None:
    listed = client.simulate_get("/v1/channels")
    assert listed.status_code == 200
    assert listed.json == {
        "channels": [
            {
                "name": "webhook",
                "setting": "webhook_url",
                "min_interval_s": 0.0,
                "verified_by": "a signed request with event verification, answered 2xx",
            },
            {
                "name": "telegram",
                "setting": "telegram_chat_id",
                "min_interval_s": 1.0,
                "verified_by": "the bot's deep link: send /start <token> to the bot",
            },
        ]
    }


def test_a_test_message_goes_to_the_target_in_the_settings(client, telegram, served) -> None:
    auth = login(client)
    no_target = client.simulate_post("/v1/me/channels/telegram/test", headers=auth)
    body = assert_error(no_target, 422)
    assert body["description"] == "channel: no telegram target in your settings: set telegram_chat_id first"
    link_chat(client, auth, served, telegram, 42)

    sent = client.simulate_post("/v1/me/channels/telegram/test", headers=auth)

    assert sent.status_code == 200, sent.text
    (message,) = telegram.sent
    detail = f"Telegram message {message['message_id']}"  # the id Telegram gave it
    assert sent.json == {"channel": "telegram", "status": "sent", "detail": detail}
    assert message["chat"]["id"] == 42
    assert message["text"].startswith("This is a test message from uBot, sent ")
    assert message["text"].endswith("your telegram alerts will arrive here.")


def test_a_refusal_is_the_providers_words(client, telegram, served) -> None:
    auth = login(client)
    link_chat(client, auth, served, telegram, 77)
    answer = client.simulate_post("/v1/me/channels/telegram/test", headers=auth)
    assert answer.json == {
        "channel": "telegram",
        "status": "failed",
        "detail": "Telegram: Bad Request: chat not found (error 400)",
    }


def test_an_unconfigured_or_unknown_channel_is_404_naming_the_setting(client) -> None:
    auth = login(client)
    body = assert_error(client.simulate_post("/v1/me/channels/sms/test", headers=auth), 404)
    assert "set [notify] twilio_account_sid" in body["description"]
    assert_error(client.simulate_post("/v1/me/channels/pigeon/test", headers=auth), 404)
    assert_error(client.simulate_post("/v1/me/channels/telegram/test"), 401)


def test_test_messages_are_throttled_per_user(client, telegram, served) -> None:
    auth = login(client)
    link_chat(client, auth, served, telegram, 42)
    for _ in range(TEST_MESSAGES):
        assert client.simulate_post("/v1/me/channels/telegram/test", headers=auth).status_code == 200
    refused = client.simulate_post("/v1/me/channels/telegram/test", headers=auth)
    body = assert_error(refused, 429)
    assert body["description"].startswith(f"at most {TEST_MESSAGES} test messages in 10 minutes")
    assert len(telegram.sent) == TEST_MESSAGES
