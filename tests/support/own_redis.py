"""A redis-server of a test's own, on a free port, with nothing saved (``--save ''``): for tests
that stop and start Redis. Never the machine's shared server (others use it)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest
import redis

from tests.support.ports import free_port
from tests.support.waits import wait_until

SERVER = shutil.which("redis-server")
BOUND_S = 30.0


class OwnRedis:
    """``start()`` (again, on the same port, empty) and ``stop()`` (``kill -9``: nothing saved)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        assert SERVER is not None
        self.proc = subprocess.Popen(
            [SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(answers, "the test's own redis-server to answer", BOUND_S)
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(BOUND_S)
            self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    """A started :class:`OwnRedis` (skipped without ``redis-server``), killed at the end."""
    if SERVER is None:
        pytest.skip("redis-server is not installed: a Redis restart needs a server of the test's own")
    server = OwnRedis(free_port())
    server.start()
    yield server
    server.stop()
