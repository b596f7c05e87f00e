"""Replaying old recordings into a live database (issue 12). Before, a replay sent its alerts for
real (dated days ago, queued for webhook, Telegram and SMS) and put old snapshots behind newer
history. Now a replay's alerts are written to the alert log marked ``replayed`` and sent only with
``--deliver``; recordings older than the newest stored snapshot are refused at start with one line,
unless ``--backfill``, which adds them to the history with the candles of their range rebuilt."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.procs import (
    MARKET_START_MS,
    MINUTE_MS,
    Market,
    Ubot,
    assert_same_candles,
    candles_of,
    replay,
    stored_candles,
    write_market,
)
from tests.support.processes import EXIT_TIMEOUT_S, command, environment
from ubot.clocks import SystemClock
from ubot.models.alerts import SCAN_WATERMARK, AlertStore
from ubot.models.candle_store import WATERMARK
from ubot.models.tables import AlertRecord, Delivery, Meta, Quote, SnapshotRecord
from ubot.models.users import UserStore
from ubot.users.manager import UserManager

COINS = 12


@pytest.fixture(scope="module")
def markets(tmp_path_factory) -> dict[str, Market]:
    """Three recordings of one market: 23:30-23:49 ("old"), 23:50-00:09 ("new", across midnight, so
    that every timeframe has a candle holding both old and new quotes), 00:10-00:19 ("newer")."""
    base = tmp_path_factory.mktemp("recordings")
    return {
        "old": write_market(base / "old", 20, COINS, MARKET_START_MS),
        "new": write_market(base / "new", 20, COINS, MARKET_START_MS + 20 * MINUTE_MS),
        "newer": write_market(base / "newer", 10, COINS, MARKET_START_MS + 40 * MINUTE_MS),
    }


def play(tmp_path: Path, market: Market, url: str, *flags: str) -> str:
    """Replay ``market`` to its end (exit 0); the log."""
    ubot = replay(tmp_path, market, url) if not flags else _start(tmp_path, market, url, *flags)
    try:
        assert ubot.wait_exit() == 0, ubot.tail()
    finally:
        ubot.close()
    return ubot.log


def _start(tmp_path: Path, market: Market, url: str, *flags: str) -> Ubot:
    return replay(tmp_path, market, url, *flags)


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(*args),
        cwd=tmp_path,
        env=environment(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT_S,
    )


def candles_of_stored_quotes() -> dict:
    """What the stored quotes imply, taken by their own time (a backfill stores them out of order)."""
    quotes = list(Quote.select(Quote.coin, Quote.ts, Quote.price).order_by(Quote.ts, Quote.snapshot).tuples())
    return candles_of(quotes)


def test_older_recordings_are_refused_and_a_backfill_rebuilds_their_candles(
    tmp_path, db, database_url, markets
) -> None:
    play(tmp_path, markets["new"], database_url)
    assert SnapshotRecord.select().count() == 20
    play(tmp_path, markets["new"], database_url)  # played again: its own recordings, not older ones

    flags = ("--no-http", "--source", "replay", "--replay-dir", markets["old"].directory, "--interval", "0")
    refused = run(tmp_path, *flags, "--db", database_url)
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.splitlines()
    assert len(lines) == 1, refused.stderr
    assert lines[0].startswith(f"ubot: replay of {markets['old'].directory} starts at 2024-10-16T23:30:00")
    assert "before the newest snapshot of database" in lines[0]
    assert lines[0].endswith(
        "use a new database, or --backfill to add the recordings to the history (candles rebuilt for "
        "their range, nothing scanned or sent)"
    )
    assert SnapshotRecord.select().count() == 20
    checked = run(tmp_path, "check", *flags, "--db", database_url)
    assert checked.returncode == 2 and lines[0] in checked.stderr.splitlines(), checked.stderr

    backfilled = run(tmp_path, *flags, "--backfill", "--db", database_url)
    assert backfilled.returncode == 0, backfilled.stderr
    assert "backfill of" in backfilled.stderr and "20 snapshot(s) stored" in backfilled.stderr
    assert SnapshotRecord.select().count() == 40
    last = SnapshotRecord.select().order_by(SnapshotRecord.id.desc()).first().id
    assert Meta.get(Meta.key == WATERMARK).value == Meta.get(Meta.key == SCAN_WATERMARK).value == str(last)
    assert_same_candles(stored_candles(), candles_of_stored_quotes())

    # The next start carries on from these candles: nothing folded twice, nothing missing.
    play(tmp_path, markets["newer"], database_url)
    assert SnapshotRecord.select().count() == 50
    assert_same_candles(stored_candles(), candles_of_stored_quotes())


def sign_up(db) -> int:
    """A user whose strategy fires on every 1m bar of the top coin, delivered by webhook."""
    manager = UserManager(UserStore(db), SystemClock(), allow_local_webhooks=True)
    user = manager.register("ada", "ada@example.com", "correct horse battery staple")
    manager.put_settings(user.id, {"webhook_url": "http://127.0.0.1:9/hook", "webhook_secret": "s" * 20})
    manager.create_strategy(
        user.id,
        {
            "name": "every bar",
            "condition": "price > 0",
            "timeframe": "1m",
            "top_n": 1,
            "channels": ["webhook"],
            "frequency": "once_per_bar",
        },
    )
    return user.id


@pytest.mark.parametrize("deliver", [False, True], ids=["default", "--deliver"])
def test_a_replays_alerts_are_marked_and_sent_only_when_asked(
    tmp_path, db, database_url, markets, deliver
) -> None:
    user_id = sign_up(db)
    market = markets["newer"]
    flags = ("--deliver",) if deliver else ()
    ubot = _start(tmp_path, market, database_url, *flags)
    try:
        assert ubot.wait_exit() == 0, ubot.tail()
    finally:
        ubot.close()
    assert "alerts are written to the alert log marked replayed" in ubot.log
    alerts = list(AlertRecord.select())
    assert len(alerts) == len(market.snapshot_times)
    assert all(alert.replayed for alert in alerts)
    assert Delivery.select().count() == (len(alerts) if deliver else 0)
    views = AlertStore(db).alerts(user_id)
    assert len(views) == len(alerts) and all(view.replayed for view in views)
