"""The bounded argon2 pool (ubot/users/hashing.py): jobs held on events, never on sleeps."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator

import pytest

from ubot.users.errors import Busy
from ubot.users.hashing import HashPool, Inline

WAIT_S = 10.0


@pytest.fixture
def pool() -> Iterator[HashPool]:
    pool = HashPool(workers=1, queue=1, retry_after_s=2)
    yield pool
    pool.close()


def held(gate: threading.Event, started: threading.Event | None = None) -> str:
    if started is not None:
        started.set()
    assert gate.wait(WAIT_S)
    return "done"


def test_beyond_the_workers_and_the_queue_a_job_is_refused_at_once(pool) -> None:
    gate, started = threading.Event(), threading.Event()
    running = pool.submit(held, gate, started)
    assert started.wait(WAIT_S)
    waiting = pool.submit(held, gate)
    assert pool.admitted == 2

    with pytest.raises(Busy) as refused:
        pool.submit(held, gate)
    assert refused.value.retry_after_s == 2
    assert "1 running, 1 waiting" in refused.value.description
    assert pool.refused == 1

    gate.set()
    assert running.result(WAIT_S) == waiting.result(WAIT_S) == "done"


def test_a_finished_job_frees_its_place(pool) -> None:
    gate = threading.Event()
    gate.set()
    for _ in range(5):  # more than workers + queue, one after another
        assert pool.run(held, gate) == "done"
    assert pool.admitted == 0


def test_a_job_that_raises_frees_its_place_and_raises_in_the_caller(pool) -> None:
    def broken() -> None:
        raise ValueError("bad hash")

    for _ in range(3):
        with pytest.raises(ValueError, match="bad hash"):
            pool.run(broken)
    assert pool.admitted == 0


def test_a_closed_pool_refuses(pool) -> None:
    pool.close()
    with pytest.raises(Busy):
        pool.run(str)
    assert pool.admitted == 0


def test_inline_runs_in_the_calling_thread() -> None:
    assert Inline().run(threading.get_ident) == threading.get_ident()


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="workers >= 1"):
        HashPool(workers=0)


def _nice_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_the_pool_threads_and_the_threads_they_start_run_at_a_lower_priority() -> None:
    """argon2 starts its lane threads from the pool thread: they inherit its nice value, so the
    kernel runs requests first. The caller's own priority is untouched."""
    base = _nice_of_this_thread()
    pool = HashPool(workers=1, queue=0, nice=7)
    try:

        def from_a_child() -> int:
            seen: list[int] = []
            child = threading.Thread(target=lambda: seen.append(_nice_of_this_thread()))
            child.start()
            child.join(WAIT_S)
            return seen[0]

        assert pool.run(_nice_of_this_thread) == min(19, base + 7)
        assert pool.run(from_a_child) == min(19, base + 7)
    finally:
        pool.close()
    assert _nice_of_this_thread() == base


def test_nice_zero_leaves_the_priority_alone() -> None:
    pool = HashPool(workers=1, queue=0, nice=0)
    try:
        assert pool.run(_nice_of_this_thread) == _nice_of_this_thread()
    finally:
        pool.close()


def test_a_nice_value_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="nice value is 0..19, not 20"):
        HashPool(nice=20)
