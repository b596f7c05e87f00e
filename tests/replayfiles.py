"""A small recorded market, written into a test's own directory, and what it must produce.

:func:`write_replay` writes CoinMarketCap-shaped files (``/v1/cryptocurrency/listings/latest`` and
``/v1/global-metrics/quotes/latest``, in the key order of real responses) in both recording formats
(a bare listings response, and ``{"listings", "global"}`` with a global response or ``null``), with
quote times crossing a 5-minute boundary, one malformed file, a coin whose optional fields are all
null, a coin with a null price (dropped), and a symbol shared by two coins. The returned
:class:`Replay` knows what the pipeline must make of it: the stored snapshots, every coin's prices
and the OHLC candles they imply, computed here independently of ``ubot.market.candles``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

MINUTE_MS = 60_000
TIMEFRAME_MS = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}


def ms(text: str) -> int:
    """``"2024-10-16T00:03:00Z"`` -> epoch milliseconds (an independent parser for the tests)."""
    value = datetime.strptime(
        text.replace("Z", ""), "%Y-%m-%dT%H:%M:%S.%f" if "." in text else "%Y-%m-%dT%H:%M:%S"
    )
    return int(value.replace(tzinfo=UTC).timestamp() * 1000)


def iso(stamp_ms: int) -> str:
    seconds, millis = divmod(stamp_ms, 1000)
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


@dataclass(frozen=True)
class CoinSpec:
    id: int
    name: str
    symbol: str
    slug: str
    rank: int
    prices: tuple[float, ...]  # one per good file, in file order
    supply: float
    max_supply: float | None = None
    token_of: int | None = None  # platform coin id, for tokens
    nulls: bool = False  # every optional field null


#: Prices chosen exactly representable, so stored and served values compare with ``==``.
COINS: tuple[CoinSpec, ...] = (
    CoinSpec(
        1, "Bitcoin", "BTC", "bitcoin", 1, (67000.5, 67250.25, 66875.75, 67500.0, 67125.5), 19_770_000.0, 21e6
    ),
    CoinSpec(
        1027, "Ethereum", "ETH", "ethereum", 2, (2600.5, 2590.25, 2625.0, 2610.75, 2640.125), 120_300_000.0
    ),
    CoinSpec(
        825,
        "Tether USDt",
        "USDT",
        "tether",
        3,
        (1.0, 1.0, 0.999755859375, 1.0, 1.000244140625),
        119_500_000_000.0,
        token_of=1027,
    ),
    CoinSpec(
        5426, "Solana", "SOL", "solana", 4, (152.5, 153.25, 151.75, 150.5, 154.0), 470_000_000.0, nulls=True
    ),
    # Two coins share the symbol HOT; the better-ranked one has the *higher* id.
    CoinSpec(
        3116, "Hydro Protocol", "HOT", "hydro-protocol", 5, (0.5, 0.625, 0.5625, 0.59375, 0.609375), 1e10
    ),
    CoinSpec(
        2682,
        "Holo",
        "HOT",
        "holo",
        9,
        (0.001953125, 0.00201416015625, 0.0018310546875, 0.001953125, 0.002197265625),
        1.7e11,
        token_of=1027,
    ),
)
NULL_PRICE_COIN = {"id": 9999, "name": "Nullcoin", "symbol": "NULLP", "slug": "nullcoin"}


@dataclass(frozen=True)
class FileSpec:
    name: str
    status_time: str  # status.timestamp
    quote_time: str | None  # every quote's last_updated; None = malformed file
    layout: str  # "bare" | "wrapped" | "wrapped-null-global" | "malformed"


FILES: tuple[FileSpec, ...] = (
    FileSpec("2024-10-16T00-03-05.json", "2024-10-16T00:03:05.112Z", "2024-10-16T00:03:00.000Z", "bare"),
    FileSpec("2024-10-16T00-04-05.json", "2024-10-16T00:04:05.311Z", "2024-10-16T00:04:00.000Z", "wrapped"),
    FileSpec("2024-10-16T00-04-35.json", "2024-10-16T00:04:35.000Z", None, "malformed"),
    FileSpec(
        "2024-10-16T00-05-05.json",
        "2024-10-16T00:05:05.020Z",
        "2024-10-16T00:05:00.000Z",
        "wrapped-null-global",
    ),
    FileSpec("2024-10-16T00-06-05.json", "2024-10-16T00:06:05.400Z", "2024-10-16T00:06:00.000Z", "bare"),
    FileSpec("2024-10-16T00-07-05.json", "2024-10-16T00:07:05.999Z", "2024-10-16T00:07:00.000Z", "wrapped"),
)
MALFORMED = "2024-10-16T00-04-35.json"


@dataclass
class Replay:
    directory: str
    files: list[str]
    snapshot_times: list[int]  # status.timestamp of every good file, in order
    quote_times: list[int]  # quote last_updated of every good file, in order
    global_times: list[int]  # data.last_updated of every global response written
    prices: dict[int, list[float]] = field(default_factory=dict)  # coin id -> price per good file
    latest: dict[int, dict] = field(default_factory=dict)  # coin id -> last listing item written

    @property
    def good_files(self) -> int:
        return len(self.snapshot_times)

    def candles(self, coin_id: int, timeframe: str) -> list[dict]:
        """The candles the prices imply: ``{"open_time", "open", "high", "low", "close"}`` ascending."""
        length = TIMEFRAME_MS[timeframe]
        buckets: dict[int, list[float]] = {}
        for stamp, price in zip(self.quote_times, self.prices[coin_id], strict=True):
            buckets.setdefault(stamp - stamp % length, []).append(price)
        return [
            {"open_time": iso(start), "open": p[0], "high": max(p), "low": min(p), "close": p[-1]}
            for start, p in sorted(buckets.items())
        ]


def _quote(coin: CoinSpec, price: float, stamp: str) -> dict:
    cap = None if coin.nulls else price * coin.supply
    fdv = price * (coin.max_supply or coin.supply)
    pct = None if coin.nulls else 1.25
    return {
        "USD": {
            "price": price,
            "volume_24h": None if coin.nulls else price * coin.supply / 40,
            "volume_change_24h": None if coin.nulls else -3.5,
            "percent_change_1h": pct,
            "percent_change_24h": None if coin.nulls else -0.75,
            "percent_change_7d": None if coin.nulls else 4.5,
            "percent_change_30d": None if coin.nulls else 10.0,
            "percent_change_60d": None if coin.nulls else 12.5,
            "percent_change_90d": None if coin.nulls else -8.0,
            "market_cap": cap,
            "market_cap_dominance": None if coin.nulls else 1.5,
            "fully_diluted_market_cap": None if coin.nulls else fdv,
            "tvl": None,
            "last_updated": stamp,
        }
    }


def _item(coin: CoinSpec, price: float, stamp: str, platforms: dict[int, CoinSpec]) -> dict:
    platform = None
    if coin.token_of is not None:
        host = platforms[coin.token_of]
        platform = {
            "id": host.id,
            "name": host.name,
            "symbol": host.symbol,
            "slug": host.slug,
            "token_address": f"0x{coin.id:040x}",
        }
    return {
        "id": coin.id,
        "name": coin.name,
        "symbol": coin.symbol,
        "slug": coin.slug,
        "num_market_pairs": None if coin.nulls else 1000 + coin.id,
        "date_added": "2013-04-28T00:00:00.000Z",
        "tags": [] if coin.nulls else ["mineable"],
        "max_supply": coin.max_supply,
        "circulating_supply": None if coin.nulls else coin.supply,
        "total_supply": None if coin.nulls else coin.supply,
        "infinite_supply": coin.max_supply is None,
        "platform": platform,
        "cmc_rank": coin.rank,
        "self_reported_circulating_supply": None,
        "self_reported_market_cap": None,
        "tvl_ratio": None,
        "last_updated": stamp,
        "quote": _quote(coin, price, stamp),
    }


def _status(stamp: str, total: int | None) -> dict:
    status = {
        "timestamp": stamp,
        "error_code": 0,
        "error_message": None,
        "elapsed": 23,
        "credit_count": 1,
        "notice": None,
    }
    if total is not None:
        status["total_count"] = total
    return status


def global_response(stamp: str, step: int) -> dict:
    total_cap = 2_250_000_000_000.0 + step * 1_000_000_000.0
    usd = {
        "total_market_cap": total_cap,
        "total_volume_24h": 75_000_000_000.0 + step,
        "total_volume_24h_reported": 1_900_000_000_000.0,
        "altcoin_volume_24h": 45_000_000_000.0,
        "altcoin_volume_24h_reported": 1_100_000_000_000.0,
        "altcoin_market_cap": 960_000_000_000.0,
        "defi_volume_24h": 4_000_000_000.0,
        "defi_volume_24h_reported": 4_100_000_000.0,
        "defi_24h_percentage_change": 1.5,
        "defi_market_cap": 88_000_000_000.0,
        "stablecoin_volume_24h": 68_000_000_000.0,
        "stablecoin_volume_24h_reported": 70_000_000_000.0,
        "stablecoin_24h_percentage_change": -0.5,
        "stablecoin_market_cap": 170_000_000_000.0,
        "derivatives_volume_24h": 600_000_000_000.0,
        "derivatives_volume_24h_reported": 610_000_000_000.0,
        "derivatives_24h_percentage_change": 2.0,
        "total_market_cap_yesterday": 2_200_000_000_000.0,
        "total_volume_24h_yesterday": 70_000_000_000.0,
        "total_market_cap_yesterday_percentage_change": 2.27,
        "total_volume_24h_yesterday_percentage_change": 7.14,
        "last_updated": stamp,
    }
    data = {
        "active_cryptocurrencies": 9915 + step,
        "total_cryptocurrencies": 31735,
        "active_market_pairs": 86748,
        "active_exchanges": 751,
        "total_exchanges": 9394,
        "eth_dominance": 13.5 + step / 8,
        "btc_dominance": 57.25 + step / 8,
        "eth_dominance_yesterday": 13.77706373,
        "btc_dominance_yesterday": 56.83310653,
        "eth_dominance_24h_percentage_change": -0.191504536343,
        "btc_dominance_24h_percentage_change": 0.563321599187,
        "defi_volume_24h": 4_000_000_000.0,
        "defi_volume_24h_reported": 4_100_000_000.0,
        "defi_market_cap": 88_000_000_000.0,
        "defi_24h_percentage_change": 1.5,
        "stablecoin_volume_24h": 68_000_000_000.0,
        "stablecoin_volume_24h_reported": 70_000_000_000.0,
        "stablecoin_market_cap": 170_000_000_000.0,
        "stablecoin_24h_percentage_change": -0.5,
        "derivatives_volume_24h": 600_000_000_000.0,
        "derivatives_volume_24h_reported": 610_000_000_000.0,
        "derivatives_24h_percentage_change": 2.0,
        "quote": {"USD": usd},
        "last_updated": stamp,
    }
    return {"data": data, "status": _status(stamp, None)}


def write_replay(directory: str | os.PathLike) -> Replay:
    """Write :data:`FILES` into ``directory`` (created if needed); return what they must produce."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    platforms = {c.id: c for c in COINS}
    replay = Replay(directory, [], [], [], [], prices={c.id: [] for c in COINS})
    step = 0
    for spec in FILES:
        path = os.path.join(directory, spec.name)
        replay.files.append(path)
        if spec.layout == "malformed":
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(
                    '{"status": {"timestamp": "'
                    + spec.status_time
                    + '", "error_code": 0}, "data": [{"id": 1,'
                )
            continue
        assert spec.quote_time is not None
        items = []
        for coin in COINS:
            price = coin.prices[step]
            item = _item(coin, price, spec.quote_time, platforms)
            items.append(item)
            replay.prices[coin.id].append(price)
            replay.latest[coin.id] = item
        if step == 1:  # a coin CMC sent without a price: dropped from that snapshot, said so
            items.append(
                {
                    **NULL_PRICE_COIN,
                    "cmc_rank": 50,
                    "last_updated": spec.quote_time,
                    "quote": {"USD": {"price": None, "last_updated": spec.quote_time}},
                }
            )
        listings = {"status": _status(spec.status_time, 9000), "data": items}
        if spec.layout == "bare":
            doc: dict = listings
        elif spec.layout == "wrapped":
            global_time = iso(ms(spec.quote_time) - 1)  # CMC's "...:59.999Z"
            doc = {"listings": listings, "global": global_response(global_time, step)}
            replay.global_times.append(ms(global_time))
        else:
            doc = {"listings": listings, "global": None}
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(doc, handle)
        replay.snapshot_times.append(ms(spec.status_time))
        replay.quote_times.append(ms(spec.quote_time))
        step += 1
    return replay
