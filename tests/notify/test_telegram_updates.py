"""Reading the bot's ``/start <token>`` messages with getUpdates long polling, against the fake
Telegram over a real socket: each update once (``offset``), other messages ignored, a failed call
retried; and the poller a delivering system runs links a user's chat by itself."""

from __future__ import annotations

import threading

import pytest

from tests.fakes.telegram import TOKEN, FakeTelegram, error
from tests.support.users import T0, cheap_hasher
from tests.support.waits import wait_until
from ubot.actors.user_manager import UserManagerActor
from ubot.clocks import FakeClock
from ubot.models.users import UserStore
from ubot.notify.channels import TelegramChannel
from ubot.notify.channels.telegram_updates import TelegramUpdates
from ubot.system import AlertOptions, telegram_poller
from ubot.users.manager import UserManager
from ubot.users.passwords import Passwords


@pytest.fixture
def telegram():
    with FakeTelegram() as fake:
        yield fake


def reader(telegram: FakeTelegram, seen: list) -> TelegramUpdates:
    def on_start(token: str, chat: str) -> bool:
        seen.append((token, chat))
        return token == "good-token"

    return TelegramUpdates(bot_token=TOKEN, base_url=telegram.base_url, on_start=on_start, poll_s=0)


def test_start_messages_are_read_once_and_others_ignored(telegram) -> None:
    seen: list = []
    updates = reader(telegram, seen)
    telegram.user_sends(42, "/start good-token")
    telegram.user_sends(43, "hello")
    telegram.user_sends(-100123, "/start@ubot_alerts_bot bad-token")
    telegram.user_sends(44, "/start")

    assert updates.poll() == 1
    assert seen == [("good-token", "42"), ("bad-token", "-100123")]
    assert updates.poll() == 0 and len(seen) == 2
    assert telegram.offsets == [None, updates.offset] and telegram.updates == []


def test_a_failed_call_is_none_and_the_offset_stays(telegram) -> None:
    updates = reader(telegram, [])
    telegram.script(error(409, "Conflict: terminated by other getUpdates request"))
    assert updates.poll() is None and updates.offset is None
    wrong = TelegramUpdates(
        bot_token="1:wrong", base_url=telegram.base_url, on_start=lambda t, c: True, poll_s=0
    )
    assert wrong.poll() is None


def test_run_keeps_reading_until_stopped(telegram) -> None:
    seen: list = []
    updates = reader(telegram, seen)
    updates.poll_s = 1  # held open by the fake until a message arrives
    stop = threading.Event()
    thread = threading.Thread(target=updates.run, args=(stop,))
    thread.start()
    try:
        telegram.user_sends(42, "/start good-token")
        wait_until(lambda: seen, "the /start to be read")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive() and seen == [("good-token", "42")]


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
            wait_until(
                lambda: users.proxy().manager.get_settings(ada).get().telegram_chat_id == "42",
                "the system's poller to link the chat",
            )
        finally:
            poller.stop()
        states = {d.channel: d.state for d in users.proxy().manager.get_settings(ada).get().destinations}
        assert states["telegram"] == "verified"
    finally:
        users.stop()
