"""A stop never waits behind long work (issue 12, ``ubot/stopping.py``), without threads: once the
process's StopToken is set, planning every strategy, a seed run in the tick, reading the stored
candles of a replay and reading every user's strategies end between chunks with ``Stopped``; an
actor with a stop token drops its told messages; a scanner process's tick feed passes no tick on;
strategies' notes are written for tens of thousands at once."""

from __future__ import annotations

import logging

import pytest

from tests.scan.support import MINUTE, T0, candles, snapshot, spec
from tests.test_worker_roles import Told, batch, tick
from ubot.actors.stage import not_fatal
from ubot.clocks import FakeClock
from ubot.models.tables import Strategy, User
from ubot.models.users import ERRORS_CHUNK, UserStore
from ubot.rules import IndicatorCall
from ubot.scan.planner import ScanPlanner
from ubot.scan.seeding import SeedJob
from ubot.scan.spec import UserStrategies
from ubot.stopping import CHUNK, Stopped, StopToken
from ubot.users.manager import UserManager
from ubot.worker_roles import TickFeed


def everyone(count: int) -> list[UserStrategies]:
    """``count`` strategies, 50 a user."""
    specs = [spec(i, "price > 10", user_id=i // 50) for i in range(1, count + 1)]
    users: dict[int, list] = {}
    for s in specs:
        users.setdefault(s.user_id, []).append(s)
    return [UserStrategies(user_id, tuple(s)) for user_id, s in users.items()]


def test_planning_every_strategy_ends_within_a_chunk_once_the_process_stops() -> None:
    stop = StopToken()
    planner = ScanPlanner(2, stop=stop)
    stop.set()
    with pytest.raises(Stopped):
        planner.set_all(everyone(5 * CHUNK))
    assert len(planner.specs) < CHUNK and planner.abandoned


def test_a_share_taken_over_is_planned_user_by_user_until_the_stop() -> None:
    stop = StopToken()
    planner = ScanPlanner(2, stop=stop)
    changes = [(u.user_id, u.specs, ()) for u in everyone(1000)]
    stop.set()
    with pytest.raises(Stopped):
        planner.set_users(changes)
    assert not planner.specs and planner.abandoned


def test_without_a_stop_everything_is_planned() -> None:
    planner = ScanPlanner(2, stop=StopToken())
    planner.set_all(everyone(3 * CHUNK))
    assert len(planner.specs) == 3 * CHUNK and not planner.abandoned


class Stored:
    """Ten coins' closed candles, one read per coin (as ``models/closes.py`` reads groups of coins)."""

    def __init__(self) -> None:
        self.reads = 0

    def load(self, timeframe: str, after_ms: int | None, before_ms: int):
        for coin in range(1, 11):
            self.reads += 1
            yield candles(timeframe, [(coin, T0 + m * MINUTE, 100.0 + m) for m in range(50)])


def test_a_seed_run_in_the_tick_stops_between_its_steps() -> None:
    stored = Stored()
    job = SeedJob("1m", [IndicatorCall("rsi", (14,))], T0 + 60 * MINUTE, stored.load)  # a read a step
    checks = []

    def check() -> None:
        checks.append(1)
        if len(checks) == 2:
            raise Stopped

    with pytest.raises(Stopped):
        job.run(check)
    assert not job.done and stored.reads < 10


def test_a_replay_reads_no_further_stored_candles_once_the_process_stops() -> None:
    stored = Stored()
    stop = StopToken()
    planner = ScanPlanner(1, stored.load, stop=stop)
    planner.set_all([UserStrategies(7, (spec(1, "rsi(14) < 101"),))])
    planner.replay(
        1, snapshot(T0 + 60 * MINUTE, [(1, "BTC")], price=[100.0])
    )  # the first: seeded in it, whole
    reads = stored.reads
    stop.set()
    with pytest.raises(Stopped):
        planner.replay(2, snapshot(T0 + 61 * MINUTE, [(1, "BTC")], price=[101.0]))
    assert stored.reads <= reads + 1 and planner.abandoned


class Actorish:
    def __init__(self, token: StopToken | None) -> None:
        self.stop_token = token
        self.handled: list[str] = []

    @not_fatal
    def handle(self, message: str) -> None:
        if message == "long":
            raise Stopped
        self.handled.append(message)


def test_an_actor_drops_its_told_messages_once_its_process_stops(caplog) -> None:
    token = StopToken()
    actor = Actorish(token)
    actor.handle("a")
    with caplog.at_level(logging.ERROR):
        actor.handle("long")  # abandoned quietly: no error, no traceback
    token.set()
    actor.handle("b")
    assert actor.handled == ["a"] and not caplog.records


def test_an_actor_without_a_token_handles_everything() -> None:
    actor = Actorish(None)
    for message in ("a", "b"):
        actor.handle(message)
    assert actor.handled == ["a", "b"]


def test_a_scanner_process_passes_no_tick_on_once_it_stops() -> None:
    told, stopping = Told(), StopToken()
    feed = TickFeed("a", told, 2.0, lambda snapshot_id: None, clock=FakeClock(0), stopping=stopping)
    feed.deliver(batch(tick(1, "a")))
    stopping.set()
    feed.deliver(batch(tick(2, "a")))
    assert [m.number for m in told] == [1]


def user_row(name: str) -> dict:
    return {
        "username": name,
        "email": f"{name}@example.com",
        "password_hash": "-",
        "created_at": 0,
        "password_changed_at": 0,
    }


def strategy_row(user_id: int, name: str) -> dict:
    return {
        "user": user_id,
        "name": name,
        "condition": "price > 1",
        "indicators": [],
        "timeframe": "1m",
        "channels": [],
        "frequency": "once_per_crossing",
        "cooldown_s": 0,
        "enabled": True,
        "created_at": 0,
        "updated_at": 0,
    }


def test_reading_every_users_strategies_ends_between_users_once_the_process_stops(db) -> None:
    users = UserStore(db)
    ids = [User.create(**user_row(f"u{i}")).id for i in range(3)]
    for user_id in ids:
        Strategy.create(**strategy_row(user_id, "s"))
    manager = UserManager(users, FakeClock(0))
    assert len(manager.all_specs(StopToken())) == 3
    stop = StopToken()
    stop.set()
    with pytest.raises(Stopped):
        manager.all_specs(stop)


def test_notes_of_many_strategies_are_each_written(db) -> None:
    user = User.create(**user_row("u"))
    count = ERRORS_CHUNK + 7
    Strategy.insert_many([strategy_row(user.id, f"s{i}") for i in range(count)]).execute()
    ids = [i for (i,) in Strategy.select(Strategy.id).order_by(Strategy.id).tuples()]
    notes = {i: "waiting for a seed" for i in ids[:-2]} | {ids[-2]: "other", ids[-1]: None}
    UserStore(db).record_errors(notes, 5_000)
    found = {
        i: (e, at)
        for i, e, at in Strategy.select(Strategy.id, Strategy.last_error, Strategy.last_error_at).tuples()
    }
    assert found == {i: (note, None if note is None else 5_000) for i, note in notes.items()}
