# ruff: noqa: F811  (the deployment fixture of test_roles_cluster, imported, is a parameter here)
"""Every role stops cleanly at any moment (issue 12): SIGTERM or SIGINT while it starts (its modules
still loading), while a scanner reads, plans and takes over thousands of strategies, and while it
scans them and writes their alerts: exit 0, its stop line logged, no traceback.

tests/test_signals.py signals ``all`` at 20 moments of a tick and the engine and gateway roles at a
tick; these add the scanner and notifier roles, and the moment before any role has started. A
scanner under load (thousands of strategies, bulk-written) once took more than a minute to stop:
each stop waited for the work in its actors' mailboxes (``ubot/stopping.py``).

The moments are the experiments' variable, found in the log (no hook in uBot). The wait for the
exit is the harness's generous deadline (a liveness bound); the stop times are printed
(``pytest -s``) and measured under load by ``bench/stop.py``.
"""

from __future__ import annotations

import signal

import pytest

from tests.support.processes import Process, command, launch
from tests.support.strategies import seed_strategies
from tests.support.waits import wait_until
from tests.test_roles_cluster import POSTGRES_URL, REDIS_URL, Deployment, deployment  # noqa: F401

pytestmark = pytest.mark.skipif(
    not (POSTGRES_URL and REDIS_URL), reason="UBOT_TEST_POSTGRES_URL or UBOT_TEST_REDIS_URL is not set"
)

#: Strategies the scanner takes over at its first tick: its start-up reads and plans them all.
STRATEGIES = 3000
#: The moments of a scanner's life at which it is signalled: a line of its log (None: at once).
SCANNER_MOMENTS = {
    "loading": None,
    "reading its strategies": "scanner: running as",
    "taking them over": "strategy(ies) taken over",
    "writing alerts": "ubot.actors.notifier: alert ",
}


def catches(process: Process, signum: int) -> bool:
    """Whether the process has a handler of its own for ``signum`` (``SigCgt`` in /proc): run.py sets
    its SIGTERM handler before loading any module of uBot, so from then on it is loading."""
    with open(f"/proc/{process.proc.pid}/status") as status:
        caught = next(int(line.split()[1], 16) for line in status if line.startswith("SigCgt:"))
    return bool(caught >> (signum - 1) & 1)


def loading(process: Process) -> None:
    """Until run.py catches SIGTERM (its first statement): the moment it starts loading uBot."""
    wait_until(lambda: catches(process, signal.SIGTERM), "run.py to catch SIGTERM", alive=process)


def start_role(deployment: Deployment, name: str, *args: str) -> Process:
    """``run.py`` with the deployment's database and Redis, the scanners and notifiers external."""
    argv = command(
        "--db", deployment.db_url, "--redis", REDIS_URL or "", "--interval", "1", "--limit", "20", *args
    )
    env = deployment.env() | {"UBOT_CLUSTER_SCANNERS": "external", "UBOT_CLUSTER_NOTIFIERS": "external"}
    process = launch(
        argv, deployment.tmp_path / f"{name}.log", cwd=deployment.tmp_path, env=env, new_session=True
    )
    deployment.processes.append(process)
    return process


def engine_with_strategies(deployment: Deployment) -> Process:
    engine = start_role(deployment, "engine", "--role", "engine")
    wait_until(lambda: "monitor: tick 1 " in engine.log, "the engine's first tick", alive=engine)
    seed_strategies(deployment.db_url, STRATEGIES, top_n=10)
    return engine


def signal_and_wait(process: Process, signum: int, what: str) -> int:
    process.proc.send_signal(signum)
    code = process.wait_exit()
    print(
        f"\n[role stop] {what}, {signal.Signals(signum).name}: exited {process.stopped_in_s:.2f} s after it"
    )
    return code


#: A role's clean stop: once running, or while loading (before the start checks), or during them.
STOP_LINES = ("INFO ubot: stopped", "while starting: stopped")


def assert_stopped_cleanly(process: Process, code: int, lines: tuple[str, ...] = STOP_LINES) -> None:
    assert code == 0, process.tail()
    assert any(line in process.log for line in lines), process.tail()
    assert "Traceback" not in process.log, process.log


@pytest.mark.parametrize("moment", list(SCANNER_MOMENTS))
def test_a_busy_scanner_stops_cleanly_at_any_moment(deployment: Deployment, moment: str) -> None:
    engine_with_strategies(deployment)
    scanner = start_role(deployment, "scanner", "--role", "scanner")
    line = SCANNER_MOMENTS[moment]
    if line is None:
        loading(scanner)
    else:
        wait_until(lambda: line in scanner.log, f"the scanner {moment}", alive=scanner)
    signum = signal.SIGINT if list(SCANNER_MOMENTS).index(moment) % 2 else signal.SIGTERM
    assert_stopped_cleanly(scanner, signal_and_wait(scanner, signum, f"scanner, {moment}"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("moment", ["loading", "running"])
def test_a_notifier_stops_cleanly(deployment: Deployment, moment: str, signum: int) -> None:
    engine = start_role(deployment, "engine", "--role", "engine")
    wait_until(
        lambda: "monitor: tick 1 " in engine.log, "the engine's first tick", alive=engine
    )  # the schema
    notifier = start_role(deployment, "notifier", "--role", "notifier")
    if moment == "running":
        wait_until(lambda: "notifier: running as" in notifier.log, "the notifier to run", alive=notifier)
    else:
        loading(notifier)
    assert_stopped_cleanly(notifier, signal_and_wait(notifier, signum, f"notifier, {moment}"))


@pytest.mark.parametrize("role", ["engine", "gateway", "all"])
def test_a_role_signalled_while_it_loads_exits_at_once(deployment: Deployment, role: str) -> None:
    """The signal lands while run.py loads uBot's modules (before the start checks): nothing is open
    yet, it exits 0 at once, saying so, where it used to die of SIGTERM or print a traceback."""
    if role == "gateway":  # its checks need the schema, should the signal come that late
        engine = start_role(deployment, "engine", "--role", "engine")
        wait_until(lambda: "monitor: tick 1 " in engine.log, "the engine's first tick", alive=engine)
    if role == "all":
        argv = command("--db", f"sqlite:///{deployment.tmp_path / 'all.db'}", "--bind", "127.0.0.1:0")
        env = deployment.env()
        process = launch(
            argv, deployment.tmp_path / "all.log", cwd=deployment.tmp_path, env=env, new_session=True
        )
        deployment.processes.append(process)
    else:
        bind = ["--bind", "127.0.0.1:0"] if role == "gateway" else []
        process = start_role(deployment, role, "--role", role, *bind)
    loading(process)
    assert_stopped_cleanly(process, signal_and_wait(process, signal.SIGTERM, f"{role}, loading"))
