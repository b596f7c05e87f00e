"""Authentication in the gateway, over a real ``run.py`` process: an authenticated request is
answered while failed logins fill the argon2 pool (which turns the surplus away with 503 and
``Retry-After``), and ending a session (logout, password change, a browser's logout) refuses its
token on the very next request, although the gateway caches checked tokens for five minutes here."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest
import requests

from tests import procs
from tests.support.waits import wait_until

TIMEOUT_S = 30.0
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a new and longer passphrase"


@pytest.fixture
def ubot(tmp_path) -> Iterator[procs.Ubot]:
    process = procs.start(
        tmp_path,
        "--interval",
        "1",
        "--limit",
        "20",
        "--db",
        f"sqlite:///{tmp_path / 'ubot.db'}",
        http=True,
        env={
            "UBOT_ACCOUNTS_HASH_WORKERS": "1",
            "UBOT_ACCOUNTS_HASH_QUEUE": "1",
            "UBOT_ACCOUNTS_SESSION_CACHE_S": "300",  # a refusal after a logout is not the TTL's
            "UBOT_LIMITS_ENABLED": "false",
            "UBOT_HTTP_TRUSTED_PROXIES": "127.0.0.1",  # each wrong login from an address of its own
        },
    )
    try:
        wait_until(
            lambda: requests.get(process.base + "/health", timeout=5).status_code == 200,
            "the gateway to serve",
            TIMEOUT_S,
            alive=process,
            ignoring=(requests.ConnectionError,),
        )
        yield process
    finally:
        process.close()


def sign_up(base: str, name: str) -> str:
    created = requests.post(
        base + "/v1/users",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
        timeout=TIMEOUT_S,
    )
    assert created.status_code == 201, created.text
    return log_in(base, name, PASSWORD)


def log_in(base: str, name: str, password: str) -> str:
    login = requests.post(
        base + "/v1/sessions", json={"username": name, "password": password}, timeout=TIMEOUT_S
    )
    assert login.status_code == 201, login.text
    return login.json()["token"]


def settings(base: str, token: str) -> requests.Response:
    return requests.get(
        base + "/v1/me/settings", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_S
    )


class WrongLogins:
    """Threads that send wrong logins, each from an address never seen before, until stopped."""

    def __init__(self, base: str, threads: int) -> None:
        self.base = base
        self.statuses: list[int] = []
        self.retry_after: set[str | None] = set()
        self.stop = threading.Event()
        self.busy = threading.Event()  # a 503 was seen: the pool was full then
        self._numbers = itertools.count(1)
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            n = next(self._numbers)
            answer = requests.post(
                self.base + "/v1/sessions",
                json={"username": f"victim{n % 7}", "password": "wrong password 1"},
                headers={"X-Forwarded-For": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"},
                timeout=TIMEOUT_S,
            )
            self.statuses.append(answer.status_code)
            if answer.status_code == 503:
                self.retry_after.add(answer.headers.get("Retry-After"))
                self.busy.set()

    def join(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT_S)


def test_an_authenticated_get_is_answered_while_logins_fill_the_pool(ubot) -> None:
    token = sign_up(ubot.base, "ada")
    logins = WrongLogins(ubot.base, threads=4)
    try:
        assert logins.busy.wait(TIMEOUT_S), f"no login was turned away: {logins.statuses}"
        answers = [settings(ubot.base, token) for _ in range(20)]
    finally:
        logins.join()
    bad_logins = logins.statuses

    assert [a.status_code for a in answers] == [200] * 20, answers[-1].text
    assert set(bad_logins) <= {401, 503}, bad_logins
    assert 401 in bad_logins and 503 in bad_logins
    assert logins.retry_after == {"1"}
    assert log_in(ubot.base, "ada", PASSWORD)


def test_ending_a_session_refuses_its_token_on_the_next_request(ubot) -> None:
    token = sign_up(ubot.base, "ada")
    other = log_in(ubot.base, "ada", PASSWORD)
    assert settings(ubot.base, token).status_code == 200  # checked, now cached
    assert settings(ubot.base, other).status_code == 200

    logout = requests.delete(
        ubot.base + "/v1/sessions/current", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_S
    )
    assert logout.status_code == 204
    assert settings(ubot.base, token).status_code == 401
    assert settings(ubot.base, other).status_code == 200  # only that session ended

    changed = requests.put(
        ubot.base + "/v1/me/password",
        json={"old_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers={"Authorization": f"Bearer {other}"},
        timeout=TIMEOUT_S,
    )
    assert changed.status_code == 204, changed.text
    assert settings(ubot.base, other).status_code == 401
    assert settings(ubot.base, log_in(ubot.base, "ada", NEW_PASSWORD)).status_code == 200


def test_a_browser_session_is_checked_and_ended_the_same_way(ubot) -> None:
    sign_up(ubot.base, "ada")
    browser = requests.Session()
    login = browser.post(
        ubot.base + "/v1/sessions/browser", json={"username": "ada", "password": PASSWORD}, timeout=TIMEOUT_S
    )
    assert login.status_code == 201, login.text
    csrf = login.json()["csrf_token"]
    assert browser.get(ubot.base + "/v1/me/settings", timeout=TIMEOUT_S).status_code == 200
    cookie = browser.cookies.get("ubot_session")

    logout = browser.delete(
        ubot.base + "/v1/sessions/current", headers={"X-CSRF-Token": csrf}, timeout=TIMEOUT_S
    )
    assert logout.status_code == 204
    replayed = requests.get(
        ubot.base + "/v1/me/settings", cookies={"ubot_session": cookie}, timeout=TIMEOUT_S
    )
    assert replayed.status_code == 401
