"""The Telegram bot end to end: ``run.py`` under gunicorn as a subprocess, the fake Telegram over real
sockets. Long polling (no ``[http] public_url``): a webhook left from before is deleted, a user's
``/start <token>`` links their chat and is answered, ``/list`` and ``/pause all`` answer and act, the
effect visible through the HTTP API. Webhook mode (``public_url`` set): uBot calls ``setWebhook``
with its gateway's URL and a secret token; an update POSTed to the gateway without the secret, or to
another path, is refused; with it, it is answered like a polled one."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.replayfiles import write_replay
from tests.support.ports import free_port
from tests.support.processes import command, environment, launch
from tests.support.waits import wait_until
from ubot.users import bot

BOT = "ubot_alerts_bot"
PASSWORD = "correct horse battery staple"
TIMEOUT_S = 10
STRATEGY = {"name": "dip", "condition": "price > 1", "timeframe": "1h", "top_n": 5, "channels": ["telegram"]}
_updates = itertools.count(9000)


class Ubot:
    def __init__(self, tmp_path: Path, telegram: FakeTelegram, *, webhook: bool) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        replay = write_replay(tmp_path / "replay")
        env = {
            "UBOT_NOTIFY_TELEGRAM_BOT_TOKEN": TOKEN,
            "UBOT_NOTIFY_TELEGRAM_API_URL": telegram.base_url,
            "UBOT_NOTIFY_TELEGRAM_BOT_USERNAME": BOT,
            "UBOT_HTTP_PUBLIC_URL": self.base if webhook else None,
        }
        self.log_path = tmp_path / "ubot.log"
        flags = ("--source", "replay", "--replay-dir", replay.directory, "--interval", "0")
        self.proc = launch(
            command("--bind", f"127.0.0.1:{port}", *flags, "--db", f"sqlite:///{tmp_path}/bot.db"),
            self.log_path,
            cwd=tmp_path,
            env=environment(home, env),
        ).proc
        wait_until(
            lambda: self.get("/health").json().get("source_exhausted"),
            "the replay to be served",
            alive=self,
            ignoring=(requests.ConnectionError,),
        )
        self.auth = self._login()

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.base + path, timeout=TIMEOUT_S, **kwargs)

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.base + path, headers=self.auth, timeout=TIMEOUT_S, **kwargs)

    def _login(self) -> dict[str, str]:
        body = {"username": "ada", "email": "ada@example.com", "password": PASSWORD}
        assert requests.post(self.base + "/v1/users", json=body, timeout=TIMEOUT_S).status_code == 201
        body = {"username": "ada", "password": PASSWORD}
        login = requests.post(self.base + "/v1/sessions", json=body, timeout=TIMEOUT_S)
        return {"Authorization": f"Bearer {login.json()['token']}"}

    def start_token(self) -> str:
        link = self.call("POST", "/v1/me/destinations/telegram/verify").json()["link"]
        assert link.startswith(f"https://t.me/{BOT}?start=")
        return link.rsplit("=", 1)[1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except Exception:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram(chats=(42, 77), https_only=False) as fake:  # the test's gateway is plain HTTP
        yield fake


@pytest.fixture
def started(tmp_path, telegram) -> Iterator[list[Ubot]]:
    running: list[Ubot] = []
    try:
        yield running
    finally:
        for ubot in running:
            ubot.stop()


def update(chat: int, text: str) -> dict:
    return {"update_id": next(_updates), "message": {"message_id": 1, "chat": {"id": chat}, "text": text}}


def test_long_polling_answers_the_linked_chat_and_acts_through_the_api(tmp_path, telegram, started) -> None:
    telegram.webhook = {"url": "https://old.example.org/v1/telegram/x", "secret_token": "x"}  # from before
    ubot = Ubot(tmp_path, telegram, webhook=False)
    started.append(ubot)
    wait_until(lambda: telegram.webhook is None, "the old webhook to be deleted", alive=ubot)

    telegram.user_sends(42, f"/start {ubot.start_token()}")
    wait_until(lambda: telegram.texts_to(42), "the /start to be answered", alive=ubot)
    assert telegram.texts_to(42)[0].startswith("Linked: this chat gets the alerts of ada on uBot.")
    assert ubot.call("GET", "/v1/me/settings").json()["telegram_chat_id"] == "42"
    created = ubot.call("POST", "/v1/me/strategies", json=STRATEGY).json()

    telegram.user_sends(42, "/list")
    telegram.user_sends(42, "/pause all")
    telegram.user_sends(77, "/pause all")  # not linked: told so, nothing done
    wait_until(lambda: len(telegram.texts_to(42)) == 3, "/list and /pause to be answered", alive=ubot)

    assert telegram.texts_to(42)[1:] == [f"#{created['id']} dip: on", f"#{created['id']} dip: paused."]
    wait_until(lambda: telegram.texts_to(77), "the other chat to be told", alive=ubot)
    assert telegram.texts_to(77) == [bot.NOT_LINKED]
    strategy = ubot.call("GET", f"/v1/me/strategies/{created['id']}").json()
    assert strategy["enabled"] is False and strategy["paused_reason"] is None


def test_webhook_mode_takes_updates_only_with_the_secret(tmp_path, telegram, started) -> None:
    ubot = Ubot(tmp_path, telegram, webhook=True)
    started.append(ubot)
    wait_until(lambda: telegram.webhook, "setWebhook", alive=ubot)
    url, secret = telegram.webhook["url"], telegram.webhook["secret_token"]
    assert re.fullmatch(re.escape(ubot.base) + r"/v1/telegram/[0-9a-f]{64}", url)
    assert re.fullmatch(r"[0-9a-f]{64}", secret) and secret not in url
    assert [method for method, _ in telegram.webhook_calls] == ["setwebhook"] and telegram.offsets == []
    header = {"X-Telegram-Bot-Api-Secret-Token": secret}
    token = ubot.start_token()

    without = requests.post(url, json=update(42, f"/start {token}"), timeout=TIMEOUT_S)
    wrong = requests.post(
        url,
        json=update(42, f"/start {token}"),
        headers={"X-Telegram-Bot-Api-Secret-Token": "0" * 64},
        timeout=TIMEOUT_S,
    )
    elsewhere = requests.post(
        ubot.base + "/v1/telegram/" + "0" * 64,
        json=update(42, f"/start {token}"),
        headers=header,
        timeout=TIMEOUT_S,
    )
    assert (without.status_code, wrong.status_code, elsewhere.status_code) == (403, 403, 404)
    assert telegram.sent == [] and ubot.call("GET", "/v1/me/settings").json()["telegram_chat_id"] is None

    linked = requests.post(url, json=update(42, f"/start {token}"), headers=header, timeout=TIMEOUT_S)

    assert linked.status_code == 204, linked.text
    assert telegram.texts_to(42)[0].startswith("Linked: this chat gets the alerts of ada on uBot.")
    created = ubot.call("POST", "/v1/me/strategies", json=STRATEGY).json()
    for text in (f"/pause {created['id']}", "/mute 2h"):
        assert requests.post(url, json=update(42, text), headers=header, timeout=TIMEOUT_S).status_code == 204
    assert telegram.texts_to(42)[1] == f"#{created['id']} dip: paused."
    assert telegram.texts_to(42)[2].startswith("Muted until ")
    assert ubot.call("GET", f"/v1/me/strategies/{created['id']}").json()["enabled"] is False
    assert ubot.call("GET", "/v1/me/settings").json()["muted_until"] is not None
    assert "POST /v1/telegram/" in ubot.log  # the access log: the path secret redacted
    assert secret not in ubot.log and url.rsplit("/", 1)[1] not in ubot.log
