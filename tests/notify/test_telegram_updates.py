"""Reading the bot's messages and answering them, against the fake Telegram over a real socket: with
getUpdates long polling each update is answered once (``offset``), a failed call is retried, a
webhook left set is deleted first; in webhook mode ``setWebhook`` gets the gateway's URL and the
secret token (and a refused one falls back to polling); and the poller a delivering system runs
links a user's chat and says so in the chat."""

from __future__ import annotations

import re
import threading

import pytest

from tests.fakes.telegram import TOKEN, FakeTelegram, error
from tests.support.users import T0, cheap_hasher
from tests.support.waits import wait_until
from ubot.actors.user_manager import UserManagerActor
from ubot.clocks import FakeClock
from ubot.models.users import UserStore
from ubot.notify.channels import TelegramChannel
from ubot.notify.channels.telegram_updates import TelegramUpdates, webhook_secrets
from ubot.system import AlertOptions, telegram_poller
from ubot.users.manager import UserManager
from ubot.users.passwords import Passwords

PUBLIC = "https://ubot.example.org/"


@pytest.fixture
def telegram():
    with FakeTelegram() as fake:
        yield fake


def reader(telegram: FakeTelegram, seen: list, public_url: str = "") -> TelegramUpdates:
    """Answers ``echo: <text>`` to every message but ``quiet``."""

    def on_message(chat: str, text: str) -> str | None:
        seen.append((chat, text))
        return None if text == "quiet" else f"echo: {text}"

    channel = TelegramChannel(bot_token=TOKEN, base_url=telegram.base_url)
    updates = channel.updates(on_message, public_url)
    updates.poll_s = 0
    updates.retry_s = 0.05
    return updates


def test_messages_are_answered_once_each(telegram) -> None:
    seen: list = []
    updates = reader(telegram, seen)
    telegram.user_sends(42, "/list")
    telegram.user_sends(42, "quiet")
    telegram.user_sends(-1001234567890, "/start@ubot_alerts_bot some-token")

    assert updates.poll() == 2
    assert seen == [("42", "/list"), ("42", "quiet"), ("-1001234567890", "/start@ubot_alerts_bot some-token")]
    assert telegram.texts_to(42) == ["echo: /list"]
    assert telegram.texts_to(-1001234567890) == ["echo: /start@ubot_alerts_bot some-token"]
    assert updates.poll() == 0 and len(seen) == 3
    assert telegram.offsets == [None, updates.offset] and telegram.updates == []


def test_a_failed_call_is_none_and_the_offset_stays(telegram) -> None:
    updates = reader(telegram, [])
    telegram.script(error(409, "Conflict: terminated by other getUpdates request"))
    assert updates.poll() is None and updates.offset is None
    wrong = TelegramUpdates(
        bot_token="1:wrong", base_url=telegram.base_url, on_message=lambda c, t: "x", poll_s=0
    )
    assert wrong.poll() is None


def test_run_deletes_a_webhook_left_set_then_keeps_reading_until_stopped(telegram) -> None:
    telegram.webhook = {"url": "https://old.example.org/hook", "secret_token": "x"}  # webhook mode before
    seen: list = []
    updates = reader(telegram, seen)
    updates.poll_s = 1  # held open by the fake until a message arrives
    stop = threading.Event()
    thread = threading.Thread(target=updates.run, args=(stop,))
    thread.start()
    try:
        telegram.user_sends(42, "/help")
        wait_until(lambda: telegram.texts_to(42), "the /help to be answered")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive() and seen == [("42", "/help")]
    assert [method for method, _ in telegram.webhook_calls] == ["deletewebhook"] and telegram.webhook is None


def test_webhook_mode_sets_the_webhook_with_its_secrets_and_ends(telegram) -> None:
    updates = reader(telegram, [], public_url=PUBLIC)
    telegram.script(error(502, "Bad Gateway"))  # a failed call is tried again
    stop = threading.Event()
    updates.run(stop)  # returns once set

    secrets = webhook_secrets(TOKEN)
    assert re.fullmatch(r"[0-9a-f]{64}", secrets.path) and re.fullmatch(r"[0-9a-f]{64}", secrets.token)
    assert secrets.path != secrets.token and webhook_secrets("2:other").path != secrets.path
    assert telegram.webhook == {
        "url": f"https://ubot.example.org/v1/telegram/{secrets.path}",
        "secret_token": secrets.token,
    }
    assert [method for method, _ in telegram.webhook_calls] == ["setwebhook"]
    assert telegram.webhook_calls[0][1]["allowed_updates"] == ["message"]
    assert telegram.offsets == []  # never polled


def test_a_refused_webhook_falls_back_to_polling(telegram) -> None:
    seen: list = []
    updates = reader(telegram, seen, public_url="http://plain.example.org")  # Telegram wants HTTPS
    stop = threading.Event()
    thread = threading.Thread(target=updates.run, args=(stop,))
    thread.start()
    try:
        telegram.user_sends(42, "/list")
        wait_until(lambda: seen, "the message to be read by polling")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert [method for method, _ in telegram.webhook_calls] == ["setwebhook", "deletewebhook"]
    assert telegram.webhook is None


def test_the_system_runs_a_poller_only_for_a_bot_with_a_username(telegram, db) -> None:
    manager = UserManager(UserStore(db), FakeClock(T0), passwords=Passwords(cheap_hasher()))
    ada = manager.register("ada", "ada@example.com", "correct horse battery 9").id
    token = manager.begin_verification(ada, "telegram").token
    users = UserManagerActor.start(manager)
    try:
        without = AlertOptions(
            channels={"telegram": TelegramChannel(bot_token=TOKEN, base_url=telegram.base_url)}
        )
        assert telegram_poller(without, users) is None
        channel = TelegramChannel(bot_token=TOKEN, base_url=telegram.base_url, bot_username="ubot_alerts_bot")
        poller = telegram_poller(AlertOptions(channels={"telegram": channel}), users)
        assert poller is not None
        try:
            telegram.user_sends(42, f"/start {token}")
            wait_until(lambda: telegram.texts_to(42), "the system's poller to link the chat and say so")
        finally:
            poller.stop()
        assert telegram.texts_to(42)[0].startswith("Linked: this chat gets the alerts of ada on uBot.")
        settings = users.proxy().manager.get_settings(ada).get()
        assert settings.telegram_chat_id == "42"
        assert {d.channel: d.state for d in settings.destinations}["telegram"] == "verified"
    finally:
        users.stop()
