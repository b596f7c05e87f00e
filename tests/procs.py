"""``run.py`` as a subprocess for the fault tests (tests/test_crash.py, tests/test_graceful.py): start
it, watch it from outside, freeze it (SIGSTOP) to look at the database in a known state, kill it.

What a test can see from outside, without any hook in uBot:

- the committed database: snapshots, quotes, the OHLC watermark (the last snapshot folded into the
  candles), alerts and deliveries;
- whether the process has a write transaction open: on SQLite, the WAL write lock is a POSIX lock on
  byte 120 of the ``-shm`` file, listed in ``/proc/locks`` with the owner's pid; on PostgreSQL,
  ``pg_stat_activity`` shows the open transaction and its last statement (the connections are
  tagged with an ``application_name`` of the test's own).

With the process frozen, both stay still, so "a store transaction is in flight" is a fact checked
before the kill, not a guess. In back-to-back mode (``--interval 0``) one tick is in flight at a
time: the Store's transaction for snapshot S+1 starts only after the OHLC committed watermark S.
So, frozen, with a write transaction open: watermark == last snapshot means the Store is writing,
watermark < last snapshot means the OHLC is writing; with none open and watermark < last snapshot,
the process stands between the two commits.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peewee import fn

from tests.support.pglocks import waiting_for
from tests.support.ports import free_port
from tests.support.processes import Process, command, environment, launch
from tests.support.waits import wait_until
from ubot.market.simulated import SimulatedSource
from ubot.models.alerts import SCAN_WATERMARK
from ubot.models.candle_store import WATERMARK
from ubot.models.tables import Candle, GlobalMetric, Meta, Quote, SnapshotRecord

TIMEOUT_S = 30
MINUTE_MS = 60_000
TIMEFRAME_MS = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}


# --- the process -----------------------------------------------------------------------------------


def freeze(pid: int) -> None:
    """SIGSTOP ``pid`` and return once every thread of it has stopped.

    ``kill`` only starts a group stop: the kernel wakes one thread, which stops the others when it
    next runs. Until then (on a loaded machine, a while) the other threads go on: a sender thread
    may read an answer sent after the ``kill``, record it, and put its next request on the wire."""
    os.kill(pid, signal.SIGSTOP)
    wait_until(lambda: _all_stopped(pid), f"every thread of process {pid} stopped")


def _all_stopped(pid: int) -> bool:
    """No thread of ``pid`` can run: each is stopped (``T``/``t``) or gone (``Z``/``X``)."""
    task = Path(f"/proc/{pid}/task")
    for thread in task.iterdir():
        try:
            stat = (thread / "stat").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        state = stat.rsplit(")", 1)[1].split()[0]  # the field after "(comm)"; comm may hold spaces
        if state not in "TtZX":
            return False
    return True


@dataclass
class Ubot(Process):
    """One ``run.py`` process. In server mode, :attr:`pid` is the gunicorn worker (where the actors
    live), found in the log; otherwise the process itself."""

    base: str | None = None  # http://127.0.0.1:port in server mode
    workers_seen: int = field(default=0)

    @property
    def pid(self) -> int:
        if self.base is None:
            return self.proc.pid
        return self.worker_pids()[-1]

    def worker_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", self.log)]

    def wait_worker(self, count: int = 1) -> int:
        """The pid of the ``count``-th gunicorn worker once it has booted."""
        pids = wait_until(lambda: self.worker_pids()[count - 1 :], f"gunicorn worker #{count}", alive=self)
        return pids[0]

    def freeze(self, pid: int | None = None) -> None:
        freeze(pid or self.pid)

    def thaw(self, pid: int | None = None) -> None:
        os.kill(pid or self.pid, signal.SIGCONT)

    def kill_worker(self, pid: int) -> None:
        """SIGKILL the gunicorn worker ``pid`` (the master stays and boots another)."""
        os.kill(pid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL (works on a frozen process too) and reap."""
        self.proc.kill()
        self.proc.wait(timeout=TIMEOUT_S)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = TIMEOUT_S, pid: int | None = None) -> int:
        """Send ``signum`` (to ``pid``, default the process) and wait for the exit; the exit code.
        :attr:`stopped_in_s` is the time from the signal to the exit."""
        started = time.monotonic()
        os.kill(pid or self.proc.pid, signum)
        if pid is not None:
            self.thaw(pid)  # a frozen worker takes the signal when it goes on
        code = self.wait_exit(timeout, started)
        return code


def start(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    http: bool = False,
    name: str = "ubot",
) -> Ubot:
    """``run.py --config settings.ini [args]`` in ``tmp_path``, its output in ``<name>.log``; in its
    own process group (a failed test kills the gunicorn worker too)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    number = len(list(tmp_path.glob(f"{name}*.log")))
    log_path = tmp_path / f"{name}-{number}.log"
    base = None
    flags = list(args)
    if http:
        port = free_port()
        flags += ["--bind", f"127.0.0.1:{port}"]
        base = f"http://127.0.0.1:{port}"
    else:
        flags.append("--no-http")
    started = launch(command(*flags), log_path, cwd=tmp_path, env=environment(home, env), new_session=True)
    return Ubot(started.proc, log_path, base=base)


# --- the database seen from outside ------------------------------------------------------------------


def tagged(database_url: str) -> tuple[str, str]:
    """``database_url`` with an ``application_name`` of its own on PostgreSQL (so this test finds its
    subprocess's connections in ``pg_stat_activity``); and that name."""
    tag = f"ubot-fault-{uuid.uuid4().hex[:10]}"
    if not database_url.startswith("postgres"):
        return database_url, tag
    separator = "&" if "?" in database_url else "?"
    return f"{database_url}{separator}application_name={tag}", tag


def sqlite_path(database_url: str) -> str | None:
    if not database_url.startswith("sqlite"):
        return None
    path = database_url.split("://", 1)[1].split("?", 1)[0]
    return path[1:] if path.startswith("/") else path  # as ubot.models.db.open_database


def open_writes(database_url: str, tag: str, pid: int) -> list[str]:
    """The write transactions process ``pid`` has open right now: on SQLite ``["write lock"]`` or
    ``[]``; on PostgreSQL the last statement of each open transaction of the tagged connections."""
    path = sqlite_path(database_url)
    if path is not None:
        try:
            inode = os.stat(path + "-shm").st_ino
        except FileNotFoundError:
            return []
        with open("/proc/locks") as locks:
            for line in locks:
                parts = line.split()
                # "1: POSIX  ADVISORY  WRITE 29795 fe:00:2146618 120 121"
                if len(parts) < 8 or parts[1] != "POSIX" or parts[3] != "WRITE" or parts[4] != str(pid):
                    continue
                if int(parts[5].rsplit(":", 1)[1]) != inode:
                    continue
                start, end = int(parts[6]), parts[7]
                if start <= 120 <= (int(end) if end != "EOF" else 1 << 62):
                    return ["write lock"]
        return []
    from ubot.models.db import database

    rows = database.execute_sql(
        "SELECT query FROM pg_stat_activity WHERE application_name = %s AND xact_start IS NOT NULL",
        (tag,),
    ).fetchall()
    return [row[0] for row in rows]


def last_snapshot() -> int:
    return SnapshotRecord.select(fn.MAX(SnapshotRecord.id)).scalar() or 0


def new_snapshots(after: int) -> int:
    """How many snapshots are stored with an id above ``after`` (ids may skip: see test_crash)."""
    return SnapshotRecord.select().where(SnapshotRecord.id > after).count()


def watermark(key: str = WATERMARK) -> int:
    """The OHLC's watermark (last snapshot folded into the candles), or with ``SCAN_WATERMARK`` the
    Notifier's (last snapshot whose scan is written)."""
    row = Meta.get_or_none(Meta.key == key)
    return int(row.value) if row else 0


@dataclass(frozen=True)
class Moment:
    """What a frozen process was doing: ``"store"`` (the Store's transaction open), ``"ohlc"`` (the
    OHLC's open), ``"between"`` (snapshot committed, candles not yet), ``"idle"`` (none of these)."""

    stage: str
    last_snapshot: int  # committed
    watermark: int
    statements: tuple[str, ...]
    #: the scan watermark, read *before* the open writes: when it is ``last_snapshot`` already, the
    #: Notifier had written all of that tick before the writes were seen (the scan, then the mark)
    scanned: int = 0


def moment(database_url: str, tag: str, pid: int) -> Moment:
    """Classify what the (frozen) process ``pid`` is doing in the market pipeline (no users)."""
    scanned = watermark(SCAN_WATERMARK)
    writes = tuple(open_writes(database_url, tag, pid))
    last, mark = last_snapshot(), watermark()
    if writes:
        stage = "store" if mark >= last else "ohlc"
    else:
        stage = "between" if mark < last else "idle"
    return Moment(stage, last, mark, writes, scanned)


def kill_at(
    ubot: Ubot,
    database_url: str,
    tag: str,
    wanted: Callable[[Moment], bool],
    what: str,
    jitter: Callable[[], float] = lambda: 0.0,
) -> Moment:
    """Freeze the process again and again until ``wanted(moment)``; then, still frozen, SIGKILL it.
    Returns that moment. (A moment that can be made rather than caught: :func:`store_held`,
    :class:`WriteLock`.)"""
    pid = ubot.pid

    def caught() -> Moment | None:
        ubot.freeze(pid)
        try:
            seen = moment(database_url, tag, pid)
            # Once the replay is over, uBot stops by itself: closing its SQLite connections takes
            # the write lock too. Only moments while it still ticks count.
            if "source exhausted" in ubot.log or not wanted(seen):
                return None
            os.kill(pid, signal.SIGKILL)
            if pid == ubot.proc.pid:
                ubot.proc.wait(timeout=TIMEOUT_S)
            return seen
        finally:
            with contextlib.suppress(ProcessLookupError):
                ubot.thaw(pid)

    return wait_until(caught, what, TIMEOUT_S, alive=ubot, interval=lambda: 0.001 + jitter())


# --- a moment made, not caught: the Store held --------------------------------------------------------


class Gate:
    """One replay file as a FIFO (:func:`gated_replay`): uBot's fetch of that tick opens it and reads
    nothing until the test writes it (:meth:`feed`). So "the fetch of that tick has begun" is seen
    (:meth:`wait_opened`: back-to-back, every tick before it has ended in the OHLC), and the tick goes
    on only when the test says so."""

    def __init__(self, path: Path, content: bytes) -> None:
        self.path = path
        self.content = content
        self._fd: int | None = None

    def wait_opened(self, ubot: Ubot) -> None:
        """Wait until uBot has the FIFO open for reading (opening it for writing succeeds then)."""

        def opened() -> bool:
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as error:  # ENXIO: no reader yet
                if error.errno != errno.ENXIO:
                    raise
                return False
            return True

        wait_until(opened, f"uBot to open {self.path.name}", alive=ubot)

    def feed(self, ubot: Ubot) -> None:
        """Write the file whole, close it, and wait until uBot has read it and closed it too."""
        assert self._fd is not None, "feed() before wait_opened()"
        os.set_blocking(self._fd, True)
        with os.fdopen(self._fd, "wb") as fifo:
            self._fd = None
            fifo.write(self.content)
        wait_until(lambda: not self._open_in(ubot.pid), f"uBot to read {self.path.name}", alive=ubot)

    def _open_in(self, pid: int) -> bool:
        fds = Path(f"/proc/{pid}/fd")
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                if os.readlink(fd) == str(self.path):
                    return True
        return False

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def gated_replay(tmp_path: Path, market: Market, gated: int) -> tuple[Market, Gate]:
    """``market`` replayed from a directory of ``tmp_path`` whose file ``gated`` (0-based: the tick
    of snapshot ``gated + 1``) is a :class:`Gate`; the others are links to the market's files."""
    directory = tmp_path / "gated-market"
    directory.mkdir()
    names = sorted(n for n in os.listdir(market.directory) if n.endswith(".json"))
    gate = None
    for i, name in enumerate(names):
        source = Path(market.directory) / name
        if i == gated:
            os.mkfifo(directory / name)
            gate = Gate(directory / name, source.read_bytes())
        else:
            os.symlink(source, directory / name)
    assert gate is not None, f"the market has {len(names)} files, not {gated + 1}"
    return Market(str(directory), market.snapshot_times, market.quotes), gate


class WriteLock:
    """The test's own write lock on the database, which uBot's writers wait for.

    SQLite: the write lock itself (``BEGIN IMMEDIATE``): every writer of uBot waits at its
    ``BEGIN IMMEDIATE``. PostgreSQL: ``LOCK TABLE`` of ``table`` in SHARE ROW EXCLUSIVE mode: reads
    go on, and a transaction of uBot's that writes to ``table`` waits inside, at that statement,
    with what it wrote before uncommitted (seen in ``pg_stat_activity``: :meth:`blocked`)."""

    def __init__(self, database_url: str, table: str) -> None:
        self.path = sqlite_path(database_url)
        if self.path is not None:
            import sqlite3

            self.connection: Any = sqlite3.connect(self.path, timeout=TIMEOUT_S, isolation_level=None)
            self.connection.execute("BEGIN IMMEDIATE")
        else:
            import psycopg2

            self.connection = psycopg2.connect(database_url)  # a transaction until commit()
            with self.connection.cursor() as cursor:
                cursor.execute(f'LOCK TABLE "{table}" IN SHARE ROW EXCLUSIVE MODE')

    def blocked(self, tag: str) -> list[str]:
        """PostgreSQL: the statements of ``tag``'s connections waiting for this lock."""
        return waiting_for(self.connection, self.connection.get_backend_pid(), tag)

    def release(self) -> None:
        if self.connection is None:
            return
        if self.path is not None:
            self.connection.execute("ROLLBACK")
        else:
            self.connection.rollback()
        self.connection.close()
        self.connection = None


#: What the Store's snapshot transaction writes last (tests/procs.py ``WriteLock`` on PostgreSQL:
#: held there, the snapshot row and its quotes are written, not committed).
STORE_LAST_TABLE = GlobalMetric._meta.table_name


@contextlib.contextmanager
def store_held(
    ubot: Ubot, database_url: str, tag: str, gate: Gate, ready: Callable[[], bool] = lambda: True
) -> Iterator[Moment]:
    """Make the moment "a tick in flight in the Store" and keep it for the block: once uBot's fetch
    of the gated tick has begun and ``ready()`` holds (the earlier ticks' scans, say), the test takes
    its write lock (:class:`WriteLock`), lets the tick go on (:meth:`Gate.feed`) and, on PostgreSQL,
    waits until the Store's snapshot transaction waits for the lock at its last table. Nothing of
    that snapshot can commit before the block ends, which releases the lock. Yields the moment."""
    gate.wait_opened(ubot)
    wait_until(ready, "the ticks before the gated one to be done", alive=ubot)
    lock = WriteLock(database_url, STORE_LAST_TABLE)
    try:
        last, mark, scanned = last_snapshot(), watermark(), watermark(SCAN_WATERMARK)
        gate.feed(ubot)
        statements: tuple[str, ...] = ("write lock",)
        if lock.path is None:
            statements = tuple(wait_until(lambda: lock.blocked(tag), "the Store's transaction", alive=ubot))
            # the snapshot's own rows (not the hourly prune's DELETE)
            assert all(
                s.startswith(("COPY", "INSERT")) and f'"{STORE_LAST_TABLE}"' in s for s in statements
            ), statements
        yield Moment("store", last, mark, statements, scanned)
    finally:
        lock.release()
        gate.close()


# --- invariants --------------------------------------------------------------------------------------


def assert_snapshots_whole() -> int:
    """No partial snapshot: each snapshot row has exactly ``coin_count`` quotes and one global-metrics
    row (the simulated market always sends them); no quote or global row without its snapshot.
    Returns the number of snapshots."""
    counts = dict(Quote.select(Quote.snapshot, fn.COUNT(Quote.coin)).group_by(Quote.snapshot).tuples())
    snapshots = list(SnapshotRecord.select(SnapshotRecord.id, SnapshotRecord.coin_count).tuples())
    partial = [(sid, n, counts.get(sid, 0)) for sid, n in snapshots if counts.get(sid, 0) != n]
    assert not partial, f"snapshots with a wrong number of quotes (id, coin_count, quotes): {partial[:5]}"
    ids = {sid for sid, _ in snapshots}
    orphans = set(counts) - ids
    assert not orphans, f"quotes of snapshots that do not exist: {sorted(orphans)[:5]}"
    metrics = [sid for (sid,) in GlobalMetric.select(GlobalMetric.snapshot).tuples()]
    assert sorted(metrics) == sorted(ids), "global metrics are not one per snapshot"
    return len(snapshots)


def candles_of(quotes: list[tuple[int, int, float]]) -> dict[tuple[int, str, int], tuple]:
    """The candle rows ``quotes`` (coin, ts, price; in time order) imply, as uBot persists them: only
    those closed (a later quote of that coin fell in a later bucket), on every timeframe; the open
    ones are rebuilt at start-up (the 1m one from the quotes). Value: (open, high, low, close, count)."""
    result: dict[tuple[int, str, int], tuple] = {}
    for timeframe, length in TIMEFRAME_MS.items():
        buckets: dict[tuple[int, int], list[float]] = {}
        latest: dict[int, int] = {}
        for coin, ts, price in quotes:
            start = ts - ts % length
            buckets.setdefault((coin, start), []).append(price)
            latest[coin] = max(latest.get(coin, start), start)
        for (coin, start), prices in buckets.items():
            if start == latest[coin]:
                continue  # still open: rebuilt at start-up, written when it closes
            result[(coin, timeframe, start)] = (prices[0], max(prices), min(prices), prices[-1], len(prices))
    return result


def stored_candles() -> dict[tuple[int, str, int], tuple]:
    rows = Candle.select(
        Candle.coin,
        Candle.timeframe,
        Candle.open_time,
        Candle.open,
        Candle.high,
        Candle.low,
        Candle.close,
        Candle.count,
    ).tuples()
    found: dict[tuple[int, str, int], tuple] = {}
    for coin, timeframe, open_time, *values in rows:
        key = (coin, timeframe, open_time)
        assert key not in found, f"duplicate candle {key}"
        found[key] = tuple(values)
    return found


def assert_candles_match_quotes() -> int:
    """The candle table is exactly what the stored quotes of the snapshots folded so far (up to the
    watermark) imply: nothing missing, nothing extra, nothing counted twice. Returns the rows."""
    mark = watermark()
    quotes = list(
        Quote.select(Quote.coin, Quote.ts, Quote.price)
        .where(Quote.snapshot <= mark)
        .order_by(Quote.snapshot, Quote.coin)
        .tuples()
    )
    expected = candles_of(quotes)
    assert_same_candles(stored_candles(), expected)
    return len(expected)


def assert_same_candles(found: dict, expected: dict) -> None:
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
    assert not (missing or extra or wrong), (
        f"candles: {len(missing)} missing (e.g. {missing[:3]}), {len(extra)} extra (e.g. {extra[:3]}), "
        f"{len(wrong)} wrong (e.g. {[(k, found[k], expected[k]) for k in wrong[:3]]})"
    )


# --- a recorded market --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Market:
    """A replay directory: ``files`` one-minute steps of the simulated market, ``coins`` coins each."""

    directory: str
    snapshot_times: list[int]
    quotes: list[tuple[int, int, float]]  # (coin, ts, price) in file order: the never-killed truth

    def candles(self) -> dict[tuple[int, str, int], tuple]:
        return candles_of(self.quotes)


def write_market(directory: Path, files: int, coins: int, start_ms: int, seed: int = 7) -> Market:
    """Write (once per directory) ``files`` replay files, one a minute from ``start_ms``, each a
    ``{"listings", "global"}`` recording of the simulated market with ``coins`` coins."""
    source = SimulatedSource(limit=coins, seed=seed)
    directory.mkdir(parents=True, exist_ok=True)
    done = directory / "complete.txt"  # not a replay file (not .json)
    times, quotes = [], []
    for i in range(files):
        at_ms = start_ms + i * MINUTE_MS
        raw = source.documents(at_ms)
        path = directory / f"{i:04d}.json"
        if not done.exists():
            path.write_text(json.dumps({"listings": raw.listings, "global": raw.global_metrics}))
        times.append(at_ms)
        quotes.extend((item["id"], at_ms, item["quote"]["USD"]["price"]) for item in raw.listings["data"])
    done.write_text("ok")
    return Market(str(directory), times, quotes)


#: The market of the crash and graceful tests: 23:30 .. 00:39 of data time (the 1h, 4h and 1d
#: candles close at midnight), 200 coins.
MARKET_START_MS = 1_729_121_400_000  # 2024-10-16T23:30:00Z


def shared_market(tmp_path_factory: Any) -> Market:
    return write_market(tmp_path_factory.getbasetemp() / "market-70x200", 70, 200, MARKET_START_MS)


def pg_backends(tag: str) -> int:
    """Open PostgreSQL connections with this ``application_name`` (0 on SQLite)."""
    from ubot.models.db import database, is_sqlite

    if is_sqlite(database):
        return 0
    return database.execute_sql(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (tag,)
    ).fetchone()[0]


def json_of(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def replay(tmp_path, market: Market, url: str, *flags: str, batches: bool = False, **kwargs):
    """``run.py`` replaying ``market`` back-to-back (interval 0) into the database at ``url``, with
    ``flags`` after. The closed candles are written at every snapshot, so that the OHLC watermark
    follows the snapshots and :func:`moment` can tell the Store's transaction from the OHLC's; with
    ``batches``, every ``[database] candle_write_minutes`` as configured by default."""
    if not batches:
        kwargs["env"] = {"UBOT_DATABASE_CANDLE_WRITE_MINUTES": "0", **(kwargs.get("env") or {})}
    return start(
        tmp_path,
        "--source",
        "replay",
        "--replay-dir",
        market.directory,
        "--interval",
        "0",
        "--db",
        url,
        *flags,
        **kwargs,
    )
