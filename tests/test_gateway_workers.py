"""``--role gateway --workers 2`` over real PostgreSQL and Redis: one port, two gunicorn worker
processes, each following the bus on its own.

Both workers serve (each writes its own metrics file), ``/metrics`` sums both, a logout through
either is refused by both (the revocation reaches each worker's session cache over the bus, not
after its five-minute TTL), and a stream whose worker is killed (``kill -9``) resumes from its
``Last-Event-ID`` on another worker process with nothing missed. Skipped when
``UBOT_TEST_POSTGRES_URL`` or ``UBOT_TEST_REDIS_URL`` is unset (the fixture of
``tests/test_roles_cluster.py``: a schema and a key prefix of the test's own).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import requests

from tests.fakes.webhook import FakeWebhook
from tests.support.metrics import parse, value
from tests.support.ports import free_port
from tests.support.waits import wait_until
from tests.test_roles_cluster import (  # noqa: F401 (deployment: the fixture)
    PASSWORD,
    POSTGRES_URL,
    REDIS_URL,
    TIMEOUT_S,
    Collector,
    Deployment,
    deployment,
    sign_up,
)
from ubot.bus import EntryId
from ubot.http.server import metrics_dir

REQUESTS = 40  # each on a connection of its own: the kernel hands them to either worker


def workers_of(master_pid: int) -> set[int]:
    """The gunicorn master's children (its workers)."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return {int(pid) for pid in children}


def two(workers: set[int]) -> set[int] | None:
    return workers if len(workers) == 2 else None


def socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def serving(workers: set[int], port: int, client_port: int) -> int:
    """The worker holding the server side of the connection from ``client_port`` to ``port``."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":"), fields[2].split(":")
        if int(local[1], 16) == port and int(remote[1], 16) == client_port:
            inode = fields[9]
    assert inode is not None, "the stream's connection is not in /proc/net/tcp"
    (pid,) = [pid for pid in workers if inode in socket_inodes(pid)]
    return pid


@pytest.mark.skipif(
    not (POSTGRES_URL and REDIS_URL), reason="UBOT_TEST_POSTGRES_URL or UBOT_TEST_REDIS_URL is not set"
)
def test_two_gateway_workers(deployment: Deployment) -> None:  # noqa: F811
    engine = deployment.engine("engine")
    wait_until(lambda: "engine: active" in engine.log, "the engine to be active", TIMEOUT_S, alive=engine)
    port = free_port()
    gateway = deployment.start(
        "gateway", "--role", "gateway", "--bind", f"127.0.0.1:{port}", "--workers", "2"
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: requests.get(base + "/health", timeout=5).status_code == 200,
        "the gateway to serve a snapshot",
        TIMEOUT_S,
        alive=gateway,
        ignoring=(requests.ConnectionError,),
    )
    workers = wait_until(lambda: two(workers_of(gateway.proc.pid)), "two workers", TIMEOUT_S)
    directory = Path(metrics_dir(("127.0.0.1", port)))

    # Both serve; /metrics sums what both counted.
    def health_count() -> float:
        scrape = parse(requests.get(base + "/metrics", timeout=TIMEOUT_S).text)
        return value(scrape, "ubot_http_requests_total", method="GET", route="/health", status="2xx")

    before = health_count()
    for _ in range(REQUESTS):
        assert requests.get(base + "/health", timeout=TIMEOUT_S).status_code == 200
    assert health_count() - before == REQUESTS
    counted_by = {int(f.stem.rsplit("_", 1)[1]) for f in directory.glob("counter_*.db")}
    # The workers now (on a loaded machine gunicorn may have replaced one since the start: its
    # successor served these requests, and the dead one's counts stay in the sum).
    workers = wait_until(lambda: two(workers_of(gateway.proc.pid)), "two workers", TIMEOUT_S)
    assert workers <= counted_by, (counted_by, workers)  # (the master's: its modules' zeros)

    # A logout through one worker is refused by both.
    with FakeWebhook() as hook:
        token = sign_up(base, hook.url())
    headers = {"Authorization": f"Bearer {token}"}

    def statuses() -> set[int]:
        return {
            requests.get(base + "/v1/me/settings", headers=headers, timeout=TIMEOUT_S).status_code
            for _ in range(REQUESTS)
        }

    assert statuses() == {200}  # cached by both workers (5 minutes)
    logout = requests.delete(base + "/v1/sessions/current", headers=headers, timeout=TIMEOUT_S)
    assert logout.status_code == 204
    wait_until(lambda: statuses() == {401}, "both workers to refuse the token", TIMEOUT_S)

    # A stream whose worker dies resumes on another worker process from its Last-Event-ID.
    login = requests.post(
        base + "/v1/sessions", json={"username": "ada", "password": PASSWORD}, timeout=TIMEOUT_S
    )
    token = login.json()["token"]
    stream = Collector(base, token)
    client_port = stream.reader.response.raw._connection.sock.getsockname()[1]
    wait_until(lambda: stream.of("snapshot")[1:], "two snapshot events", TIMEOUT_S)
    victim = serving(workers, port, client_port)
    os.kill(victim, signal.SIGKILL)
    assert stream.ended.wait(TIMEOUT_S)
    last_seen = stream.events[-1]["id"]
    resumed = Collector(base, token, last_event_id=last_seen)
    assert resumed.head == {"retry": "3000"}
    wait_until(lambda: resumed.of("snapshot")[1:], "snapshot events after the resume", TIMEOUT_S)
    assert not resumed.of("reset")
    ids = [EntryId.parse(e["id"]) for e in list(resumed.events)]
    assert deployment.events_after(last_seen, len(ids)) == ids
    now = workers_of(gateway.proc.pid)
    assert victim not in now and len(now) == 2  # gunicorn replaced it
    resumed.close()
    stream.close()

    for process in (gateway, engine):
        process.proc.send_signal(signal.SIGTERM)
        assert process.wait_exit() == 0, process.tail()
    assert not directory.exists()  # removed at exit


def test_gateway_workers_need_the_gateway_role(tmp_path) -> None:
    """``--role all`` keeps one worker: more is refused with one line, before anything starts."""
    import subprocess

    from tests.support.processes import command, environment

    (tmp_path / "home").mkdir()
    done = subprocess.run(
        command("--db", f"sqlite:///{tmp_path / 'u.db'}", "--workers", "2"),
        env=environment(tmp_path / "home"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "ubot: [http] workers = 2 (--workers): --role all keeps one gateway process (the pipeline's "
        "actors live in it); several workers are for --role gateway"
    ]
    assert not (tmp_path / "u.db").exists()
