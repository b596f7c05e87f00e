"""What a dry run reads (``scan/dryrun.py``): the coins of its scope, their 1m candles in the range and
their closed candles of the strategy's timeframe before it: whole blocks of packed candles where the
block packer has packed them, range reads of the candle rows for the rest (``models/candle_blocks.py``),
straight into numpy columns; then the candles not written yet, rebuilt from the stored quotes
(``models/candle_store.py``)."""

from __future__ import annotations

import numpy as np
from peewee import Database, fn

from ubot.market.candles import TIMEFRAMES, CandleRows, bucket_start
from ubot.models.candle_blocks import BlockReader
from ubot.models.candle_store import CandleStore, Replay, with_pending
from ubot.models.tables import Candle, Coin, Quote, SnapshotRecord
from ubot.scan.dryrun import WARMUP_CANDLES, DryRunSpec, StoredHistory
from ubot.users.errors import ValidationError


class DryRunReader:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._blocks = BlockReader(db)

    def read(self, spec: DryRunSpec) -> StoredHistory:
        ids, symbols = self._scope(spec)
        start_minute = int(bucket_start(spec.start_ms, "1m"))
        replay = CandleStore(self._db).replay(ids.tolist())  # before the stored candles: see there
        minutes = self._candles("1m", ids, start_minute, spec.end_ms, replay)
        length = TIMEFRAMES[spec.timeframe]
        first_bar = int(bucket_start(spec.start_ms, spec.timeframe))
        warmup = self._candles(spec.timeframe, ids, first_bar - WARMUP_CANDLES * length, first_bar, replay)
        stored = None if len(minutes) else self.stored(replay)
        return StoredHistory(ids, symbols, minutes, warmup, stored)

    def stored(self, replay: Replay | None = None) -> tuple[int, int] | None:
        """When the stored 1m candles begin and end (of any coin; with those of ``replay`` not
        written yet), or None."""
        row = (
            Candle.select(fn.MIN(Candle.open_time), fn.MAX(Candle.last_ts))
            .where(Candle.timeframe == "1m")
            .tuples()
            .first()
        )
        spans = [] if row is None or row[0] is None else [(int(row[0]), int(row[1]))]
        pending = replay.pending("1m") if replay is not None else None
        if pending is not None and len(pending):
            spans.append((int(pending.open_time.min()), int(pending.last_ts.max())))
        return (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None

    def _scope(self, spec: DryRunSpec) -> tuple[np.ndarray, tuple[str, ...]]:
        """The coins of the scope, ascending by id: each symbol's best-ranked coin (by its latest
        quote), or the top ``top_n`` of the latest snapshot stored before the range's end."""
        if spec.symbols is not None:
            wanted = {s.upper() for s in spec.symbols}
            rows = list(
                Coin.select(Coin.id, Coin.symbol).where(fn.UPPER(Coin.symbol).in_(sorted(wanted))).tuples()
            )
            rank = self._latest_ranks([r[0] for r in rows])
            best: dict[str, tuple[int, str]] = {}
            for coin_id, symbol in sorted(rows, key=lambda r: (rank.get(r[0], float("inf")), r[0])):
                best.setdefault(symbol.upper(), (coin_id, symbol))
            missing = sorted(wanted - set(best))
            if missing:
                raise ValidationError("symbols", f"no stored history of {', '.join(missing)}")
            chosen = sorted(best.values())
        else:
            snapshot = (
                SnapshotRecord.select(SnapshotRecord.id)
                .where(SnapshotRecord.timestamp < spec.end_ms)
                .order_by(SnapshotRecord.timestamp.desc())
                .limit(1)
                .scalar()
            ) or SnapshotRecord.select(fn.MIN(SnapshotRecord.id)).scalar()
            chosen = sorted(
                Quote.select(Quote.coin, Coin.symbol)
                .join(Coin)
                .where((Quote.snapshot == snapshot) & (Quote.rank <= spec.top_n))
                .tuples()
            )
        ids = np.array([c for c, _ in chosen], dtype=np.int64)
        return ids, tuple(s for _, s in chosen)

    def _latest_ranks(self, coin_ids: list[int]) -> dict[int, float]:
        ranks = {}
        for coin_id in coin_ids:
            rank = (
                Quote.select(Quote.rank)
                .where(Quote.coin == coin_id)
                .order_by(Quote.ts.desc())
                .limit(1)
                .scalar()
            )
            if rank is not None:
                ranks[coin_id] = float(rank)
        return ranks

    def _candles(
        self, timeframe: str, ids: np.ndarray, after_ms: int, before_ms: int, replay: Replay
    ) -> CandleRows:
        """The closed candles of ``timeframe`` of ``ids`` opened in ``[after_ms, before_ms)``, by coin
        then time: coin, open time, close and last quote time filled in (a candle's open time is the
        bucket of its last quote); the stored ones, then those of ``replay`` not written yet."""
        coin_ids, columns = self._blocks.columns(
            timeframe, ids.tolist(), after_ms, before_ms, ("close", "last_ts")
        )
        n = len(coin_ids)
        last_ts = columns["last_ts"]
        zeros, nans = np.zeros(n, dtype=np.int64), np.full(n, np.nan)
        open_time = bucket_start(last_ts, timeframe)
        stored = CandleRows(
            timeframe, coin_ids, open_time, nans, nans, nans, columns["close"], zeros, last_ts, zeros
        )
        pending = replay.pending(timeframe, after_ms, before_ms)
        if not len(pending):
            return stored
        n = len(pending)
        zeros, nans = np.zeros(n, dtype=np.int64), np.full(n, np.nan)
        thin = CandleRows(
            timeframe,
            pending.coin_ids,
            pending.open_time,
            nans,
            nans,
            nans,
            pending.close,
            zeros,
            pending.last_ts,
            zeros,
        )
        return with_pending(stored, thin)
