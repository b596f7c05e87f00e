"""A SIMULATED crypto market, served in CoinMarketCap's exact wire shapes. Its prices are not real.

:class:`SimulatedSource` is the market uBot uses when the user has no CoinMarketCap API key. It
answers every tick with a ``/v1/cryptocurrency/listings/latest`` response and a
``/v1/global-metrics/quotes/latest`` response shaped like the real ones (same keys, key order,
nulls and status block), so everything downstream runs exactly as it would against CMC.

The universe holds :data:`UNIVERSE_SIZE` coins: about forty real top coins (real CMC ids, names,
symbols, slugs, tags, platforms; prices and supplies as of mid-2024) followed by deterministic
synthetic coins ("Simcoin 123", symbol ``SIM123``, ids from 100000) whose market caps fall off
like a power law. Another few thousand coins are only counted in the totals, as on CMC, where
``total_count`` (~10k) exceeds the 5000 coins one call may return.

Prices are a pure function of ``(seed, coin, time)``: the log-price is the coin's base price plus
a BTC-like market factor (times the coin's beta) plus the coin's own noise. Each noise is a sum of
octaves (grid spacing ``60 s * 4**o``) of hashed standard normals, linearly interpolated between
grid points, with amplitude ``sqrt(spacing)`` so it behaves like a random walk from a minute to
half a year. The same seed therefore gives the same prices at the same instant whatever ticks were
asked before, a restart continues the same path, and the 1h..90d percent changes are computed
exactly from the price function at the earlier instants. Stablecoins are softly held within 0.3%
of their peg.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from ubot.market.credits import listings_credits
from ubot.market.snapshot import QUOTE_FIELDS, RawMarket, Snapshot, parse_global
from ubot.market.source import FatalSourceError
from ubot.timeutil import iso_from_ms

#: Coins simulated one by one (the most a single CMC listings call can return).
UNIVERSE_SIZE = 5000
#: Active coins reported by the simulated CMC (``total_count``); those past UNIVERSE_SIZE exist
#: only as an aggregate in the global totals. Figures from a real 2024-10 capture.
ACTIVE_CRYPTOCURRENCIES = 9915
TOTAL_CRYPTOCURRENCIES = 31735
ACTIVE_MARKET_PAIRS = 86748
ACTIVE_EXCHANGES = 751
TOTAL_EXCHANGES = 9394
#: First id of the synthetic coins (real CMC ids stay well below).
SYNTHETIC_ID_BASE = 100_000

_MINUTE_MS = 60_000
_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000
#: Instants of each fetch, as lags from the tick: now, then the percent_change_* horizons.
_LAGS_MS = (0, _HOUR_MS, _DAY_MS, 7 * _DAY_MS, 30 * _DAY_MS, 60 * _DAY_MS, 90 * _DAY_MS)
_LAG_24H = 2  # index of the 24 h lag in _LAGS_MS
_PRICE_OCTAVES = tuple(range(10))  # 1 min .. 182 days
_VOLUME_OCTAVES = (3, 4, 5, 6, 7)  # 64 min .. 11 days: a 24 h rolling volume is smooth
#: Daily log-volatility of the market factor (= BTC).
_MARKET_VOL = 0.025
#: Stablecoins' log-price is squashed into +-this around the peg.
_PEG_BAND = 0.003
#: Reported volumes (with wash trading) exceed the adjusted ones by this factor.
_REPORTED_FACTOR = 1.12

# fmt: off
# Per kind: (beta to the market factor, daily idiosyncratic log-volatility, volume noise scale).
_KINDS: dict[str, tuple[float, float, float]] = {
    "btc": (1.0, 0.0, 0.25),
    "eth": (1.15, 0.02, 0.25),
    "major": (1.2, 0.03, 0.3),
    "alt": (1.3, 0.04, 0.35),
    "meme": (1.5, 0.055, 0.45),
    "stable": (0.0, 0.0001, 0.2),
    "wrapped": (1.0, 0.0006, 0.3),
}
# Platforms tokens live on: CMC's {id, name, symbol, slug}.
_PLATFORMS: dict[str, tuple[int, str, str, str]] = {
    "eth": (1027, "Ethereum", "ETH", "ethereum"),
    "bnb": (1839, "BNB Smart Chain (BEP20)", "BNB", "bnb"),
    "sol": (5426, "Solana", "SOL", "solana"),
    "arb": (11841, "Arbitrum", "ARB", "arbitrum"),
    "op": (11840, "Optimism", "OP", "optimism-ethereum"),
}
# Real top coins, prices and supplies as of mid-2024. Per coin, on two lines:
# (id, symbol, name, slug, date_added, price USD, circulating, total, max or None,
#  num_market_pairs, daily volume / market cap, kind, infinite_supply, tags, platform or None)
_REAL_COINS: tuple[tuple[Any, ...], ...] = (
    (1, "BTC", "Bitcoin", "bitcoin", "2010-07-13", 63_000.0, 19.76e6, 19.76e6, 21e6,
     11_800, 0.025, "btc", False, "mineable pow sha-256 store-of-value state-channel", None),
    (1027, "ETH", "Ethereum", "ethereum", "2015-08-07", 2_600.0, 120.3e6, 120.3e6, None,
     9_600, 0.05, "eth", True, "pos smart-contracts ethereum-ecosystem layer-1", None),
    (825, "USDT", "Tether USDt", "tether", "2015-02-25", 1.0, 119e9, 121e9, None,
     99_500, 0.45, "stable", True, "payments stablecoin asset-backed-stablecoin", ("eth",
     "0xdac17f958d2ee523a2206206994597c13d831ec7")),
    (1839, "BNB", "BNB", "bnb", "2017-07-25", 580.0, 145.9e6, 145.9e6, None,
     2_100, 0.02, "major", False, "marketplace centralized-exchange smart-contracts", None),
    (5426, "SOL", "Solana", "solana", "2020-04-10", 150.0, 467e6, 583e6, None,
     760, 0.04, "major", True, "pos platform solana-ecosystem layer-1", None),
    (3408, "USDC", "USDC", "usd-coin", "2018-10-08", 1.0, 35.5e9, 35.5e9, None,
     18_600, 0.15, "stable", False, "medium-of-exchange stablecoin asset-backed-stablecoin", ("eth",
     "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48")),
    (52, "XRP", "XRP", "xrp", "2013-08-04", 0.55, 56.4e9, 99.987e9, 100e9,
     1_500, 0.04, "major", False, "medium-of-exchange enterprise-solutions", None),
    (74, "DOGE", "Dogecoin", "dogecoin", "2013-12-15", 0.11, 146e9, 146e9, None,
     1_050, 0.05, "meme", True, "mineable pow scrypt medium-of-exchange memes", None),
    (1958, "TRX", "TRON", "tron", "2017-09-13", 0.155, 86.7e9, 86.7e9, None,
     1_000, 0.03, "major", True, "media payments tron-ecosystem layer-1", None),
    (11419, "TON", "Toncoin", "toncoin", "2021-08-26", 5.3, 2.53e9, 5.11e9, None,
     780, 0.03, "major", True, "pos layer-1 toncoin-ecosystem", None),
    (2010, "ADA", "Cardano", "cardano", "2017-10-01", 0.35, 35e9, 45e9, 45e9,
     1_300, 0.025, "major", False, "dpos pos platform research smart-contracts", None),
    (5805, "AVAX", "Avalanche", "avalanche", "2020-07-13", 27.0, 406e6, 446e6, 715.748719e6,
     900, 0.04, "major", False, "defi smart-contracts avalanche-ecosystem layer-1", None),
    (5994, "SHIB", "Shiba Inu", "shiba-inu", "2020-08-01", 0.000018, 589.3e12, 589.5e12, None,
     780, 0.05, "meme", False, "memes ethereum-ecosystem doggone-doggerel", ("eth",
     "0x95ad61b0a150d79219dcf64e1e6cc01f0b64c4ce")),
    (3717, "WBTC", "Wrapped Bitcoin", "wrapped-bitcoin", "2019-01-30", 62_950.0, 154e3, 154e3, None,
     1_200, 0.02, "wrapped", False, "medium-of-exchange wrapped-tokens defi", ("eth",
     "0x2260fac5e5542a773aa44fbcfedf7c193bc2c599")),
    (1975, "LINK", "Chainlink", "chainlink", "2017-09-20", 11.0, 608e6, 1e9, 1e9,
     1_800, 0.05, "alt", False, "platform defi oracles ethereum-ecosystem", ("eth",
     "0x514910771af9ca656af840dff83e8264ecf986ca")),
    (1831, "BCH", "Bitcoin Cash", "bitcoin-cash", "2017-07-23", 330.0, 19.73e6, 19.73e6, 21e6,
     950, 0.05, "alt", False, "mineable pow sha-256 marketplace", None),
    (6636, "DOT", "Polkadot", "polkadot-new", "2020-08-19", 4.3, 1.5e9, 1.5e9, None,
     700, 0.03, "alt", True, "substrate polkadot-ecosystem layer-0", None),
    (4943, "DAI", "Dai", "multi-collateral-dai", "2019-11-22", 1.0, 5.3e9, 5.3e9, None,
     2_400, 0.05, "stable", False, "defi stablecoin ethereum-ecosystem", ("eth",
     "0x6b175474e89094c44da98b954eedeac495271d0f")),
    (3957, "LEO", "UNUS SED LEO", "unus-sed-leo", "2019-05-21", 5.9, 925e6, 985e6, None,
     30, 0.001, "alt", False, "marketplace centralized-exchange", ("eth",
     "0x2af5d2ad76741191d15dfe7bf6ac92d4bd912ca3")),
    (6535, "NEAR", "NEAR Protocol", "near-protocol", "2020-08-11", 4.8, 1.14e9, 1.2e9, None,
     600, 0.05, "alt", True, "platform ai-big-data layer-1 near-protocol-ecosystem", None),
    (2, "LTC", "Litecoin", "litecoin", "2013-04-28", 67.0, 75e6, 84e6, 84e6,
     1_100, 0.06, "alt", False, "mineable pow scrypt medium-of-exchange", None),
    (20947, "SUI", "Sui", "sui", "2022-07-12", 1.9, 2.66e9, 10e9, 10e9,
     400, 0.06, "alt", False, "layer-1 sui-ecosystem move-vm", None),
    (7083, "UNI", "Uniswap", "uniswap", "2020-09-17", 7.4, 600e6, 1e9, 1e9,
     1_000, 0.03, "alt", False, "defi dex amm governance ethereum-ecosystem", ("eth",
     "0x1f9840a85d5af5bf1d1762f925bdaddc4201f984")),
    (8916, "ICP", "Internet Computer", "internet-computer", "2021-03-23", 8.7, 471e6, 520e6, None,
     300, 0.02, "alt", True, "platform distributed-computing layer-1", None),
    (21794, "APT", "Aptos", "aptos", "2022-10-12", 8.6, 500e6, 1.12e9, None,
     420, 0.03, "alt", True, "layer-1 aptos-ecosystem move-vm", None),
    (24478, "PEPE", "Pepe", "pepe", "2023-04-17", 0.0000095, 420.69e12, 420.69e12, 420.69e12,
     600, 0.15, "meme", False, "memes ethereum-ecosystem", ("eth",
     "0x6982508145454ce325ddbe47a25d4ec3d2311933")),
    (20396, "KAS", "Kaspa", "kaspa", "2022-06-07", 0.14, 24.9e9, 24.9e9, 28.7e9,
     90, 0.03, "alt", False, "mineable pow layer-1", None),
    (1321, "ETC", "Ethereum Classic", "ethereum-classic", "2016-07-24", 19.0, 148e6, 148e6,
     210.7e6, 600, 0.05, "alt", False, "mineable pow ethash platform", None),
    (328, "XMR", "Monero", "monero", "2014-05-21", 160.0, 18.44e6, 18.44e6, None,
     200, 0.03, "alt", True, "mineable pow medium-of-exchange privacy", None),
    (29470, "USDe", "Ethena USDe", "ethena-usde", "2024-02-19", 1.0, 2.6e9, 2.6e9, None,
     120, 0.03, "stable", False, "stablecoin defi ethereum-ecosystem", ("eth",
     "0x4c9edd5852cd905f086c759e8383e09bff1e68b3")),
    (512, "XLM", "Stellar", "stellar", "2014-08-05", 0.095, 29.6e9, 50e9, 50e9,
     650, 0.03, "alt", False, "medium-of-exchange enterprise-solutions decentralized-exchange",
     None),
    (3635, "CRO", "Cronos", "cronos", "2018-12-14", 0.08, 27e9, 30e9, 30e9,
     250, 0.01, "alt", False, "platform centralized-exchange cronos-ecosystem", None),
    (4847, "STX", "Stacks", "stacks", "2019-10-28", 1.7, 1.5e9, 1.5e9, 1.818e9,
     200, 0.04, "alt", False, "mineable smart-contracts bitcoin-ecosystem layer-2", None),
    (4642, "HBAR", "Hedera", "hedera", "2019-09-17", 0.055, 37.5e9, 50e9, 50e9,
     300, 0.03, "alt", False, "dag enterprise-solutions layer-1", None),
    (2280, "FIL", "Filecoin", "filecoin", "2017-12-13", 3.6, 600e6, 1.96e9, 1.96e9,
     500, 0.06, "alt", False, "mineable distributed-computing filesharing storage", None),
    (3794, "ATOM", "Cosmos", "cosmos", "2019-03-14", 4.5, 390e6, 390e6, None,
     650, 0.05, "alt", True, "platform cosmos-ecosystem interoperability", None),
    (1518, "MKR", "Maker", "maker", "2017-01-29", 1_350.0, 928e3, 977e3, 1.005577e6,
     500, 0.04, "alt", False, "store-of-value defi dao governance ethereum-ecosystem", ("eth",
     "0x9f8f72aa9304c8b593d555f12ef6589cc3a579a2")),
    (7278, "AAVE", "Aave", "aave", "2020-10-02", 150.0, 14.9e6, 16e6, 16e6,
     700, 0.08, "alt", False, "defi dao lending-borowing ethereum-ecosystem", ("eth",
     "0x7fc66500c84a76ad7e9c93437bfc5ac33e2ddae9")),
    (11841, "ARB", "Arbitrum", "arbitrum", "2023-03-23", 0.55, 3.5e9, 10e9, 10e9,
     700, 0.08, "alt", False, "layer-2 arbitrum-ecosystem governance", ("arb",
     "0x912ce59144191c1204e64559fe8253a0e49e6548")),
    (11840, "OP", "Optimism", "optimism-ethereum", "2022-05-31", 1.6, 1.2e9, 4.294967296e9,
     4.294967296e9, 500, 0.1, "alt", False, "layer-2 optimism-ecosystem governance", ("op",
     "0x4200000000000000000000000000000000000042")),
    (7226, "INJ", "Injective", "injective", "2020-10-21", 20.0, 97.7e6, 100e6, 100e6,
     300, 0.06, "alt", False, "defi derivatives layer-1 cosmos-ecosystem", None),
    (10603, "IMX", "Immutable", "immutable-x", "2021-06-25", 1.4, 1.6e9, 2e9, 2e9,
     350, 0.03, "alt", False, "gaming nft layer-2 ethereum-ecosystem", ("eth",
     "0xf57e7e7c23978c3caec3c3548e3d615c346e79ff")),
    (3077, "VET", "VeChain", "vechain", "2017-08-22", 0.022, 81e9, 85.985041177e9,
     86.712634466e9, 250, 0.02, "alt", False, "logistics enterprise-solutions layer-1", None),
    (4030, "ALGO", "Algorand", "algorand", "2019-06-20", 0.13, 8.2e9, 10e9, 10e9,
     400, 0.04, "alt", False, "pos platform research layer-1", None),
    (6719, "GRT", "The Graph", "the-graph", "2020-12-17", 0.16, 9.5e9, 10.8e9, None,
     500, 0.04, "alt", True, "ai-big-data defi ethereum-ecosystem", ("eth",
     "0xc944e90c64b2c07662a292be6244bdf05cda44a7")),
)
# Synthetic coins: market cap of universe rank r is about _SYN_CAP0 * (r / _SYN_RANK0) ** -_SYN_SLOPE.
_SYN_CAP0, _SYN_RANK0, _SYN_SLOPE = 1.1e9, 46.0, 1.4
_SYN_TAGS = (
    "defi", "memes", "gaming", "ai-big-data", "layer-1", "layer-2", "dao", "nft", "metaverse",
    "real-world-assets", "depin", "yield-farming", "dex", "staking", "governance", "web3",
)
_ECOSYSTEM_TAGS = {
    "eth": "ethereum-ecosystem", "bnb": "bnb-chain-ecosystem", "sol": "solana-ecosystem",
}
# Conversion rates: units of the currency per USD (fixed; mid-2024).
_FIAT_PER_USD: dict[str, float] = {
    "USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 150.0, "CHF": 0.88, "CAD": 1.36, "AUD": 1.52,
    "NZD": 1.65, "CNY": 7.2, "HKD": 7.8, "SGD": 1.35, "KRW": 1350.0, "INR": 83.5, "BRL": 5.4,
    "MXN": 17.5, "RUB": 92.0, "TRY": 32.0, "ZAR": 18.5, "SEK": 10.6, "NOK": 10.7, "DKK": 6.9,
    "PLN": 4.0, "CZK": 23.0, "HUF": 360.0, "ILS": 3.7, "AED": 3.6725, "SAR": 3.75, "THB": 36.5,
    "IDR": 16000.0, "PHP": 57.0, "VND": 25000.0, "NGN": 1500.0, "ARS": 900.0, "UAH": 40.0,
}
# fmt: on

# -- hashing: splitmix64 on uint64 arrays, standard normals by inverse-CDF table ----------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1
_NORMAL_BITS = 12
#: Standard-normal quantiles at the centres of 4096 equal-probability bins.
_NORMAL_TABLE = np.array(
    [NormalDist().inv_cdf((i + 0.5) / (1 << _NORMAL_BITS)) for i in range(1 << _NORMAL_BITS)]
)
_NORMAL_TABLE /= _NORMAL_TABLE.std()  # unit variance exactly


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array (wrapping arithmetic); returns it."""
    tmp = np.empty_like(z)
    np.right_shift(z, np.uint64(30), out=tmp)
    z ^= tmp
    z *= _MIX1
    np.right_shift(z, np.uint64(27), out=tmp)
    z ^= tmp
    z *= _MIX2
    np.right_shift(z, np.uint64(31), out=tmp)
    z ^= tmp
    return z


def _hash(*parts: int | np.ndarray) -> np.ndarray:
    """A uint64 hash of a sequence of integers (scalars or int arrays, broadcast together).

    Always an array (shape ``(1,)`` when every part is a scalar).
    """
    state = np.zeros(1, dtype=np.uint64)
    for part in parts:
        if isinstance(part, np.ndarray):
            value = part.astype(np.int64).view(np.uint64)
        else:
            value = np.array([int(part) & _MASK64], dtype=np.uint64)
        state = _mix((state ^ value) + _GOLDEN)
    return state


def _hash_int(*parts: int) -> int:
    return int(_hash(*parts)[0])


def _uniform(*parts: int | np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1) hashed from integers."""
    return (_hash(*parts) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _normal(*parts: int | np.ndarray) -> np.ndarray:
    return _NORMAL_TABLE[(_hash(*parts) >> np.uint64(64 - _NORMAL_BITS)).astype(np.intp)]


def _octave_spacing_ms(octave: int) -> int:
    return _MINUTE_MS * 4**octave


def _diff_variance(spacing: float, lag: float, phases: int = 2048) -> float:
    """Variance of X(t + lag) - X(t), averaged over t, for X the linear interpolation of iid unit
    normals on a grid of ``spacing``."""
    f = (np.arange(phases) + 0.5) / phases  # position of t inside its cell
    shift = lag / spacing
    whole = math.floor(shift)
    g = f + (shift - whole)  # position of t + lag relative to cell start of t, minus ``whole``
    carry = np.floor(g)
    f2 = g - carry
    offset = whole + carry  # cell index of t + lag relative to t's cell
    # X(t) = (1-f) z0 + f z1 ; X(t+lag) = (1-f2) z_off + f2 z_{off+1}
    same0 = offset == 0
    same1 = offset == 1
    w_a0 = 1 - f - np.where(same0, 1 - f2, 0.0)
    w_a1 = f - np.where(same0, f2, 0.0) - np.where(same1, 1 - f2, 0.0)
    w_b0 = np.where(same0 | same1, 0.0, 1 - f2)
    w_b1 = np.where(same0, 0.0, f2)
    return float(np.mean(w_a0**2 + w_a1**2 + w_b0**2 + w_b1**2))


def _octave_amplitudes(octaves: Iterable[int]) -> dict[int, float]:
    """Amplitude per octave: ``sqrt(spacing)``, scaled so a one-day change has unit variance."""
    raw = {o: math.sqrt(_octave_spacing_ms(o) / _DAY_MS) for o in octaves}
    daily = sum(a * a * _diff_variance(_octave_spacing_ms(o), _DAY_MS) for o, a in raw.items())
    scale = 1.0 / math.sqrt(daily)
    return {o: a * scale for o, a in raw.items()}


class _NoiseField:
    """Multi-octave value noise for a set of keys (one per coin), a pure function of key and time.

    Grid values are cached between calls (they are deterministic, so caching never changes a
    result): consecutive ticks only hash the few grid points they have not seen.
    """

    def __init__(self, keys: np.ndarray, octaves: tuple[int, ...]) -> None:
        self.keys = np.ascontiguousarray(keys, dtype=np.uint64)
        self.octaves = octaves
        self.amplitudes = _octave_amplitudes(octaves)
        self.salts = {o: _hash_int(0x0C7A7E, o) for o in octaves}
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def _grid(self, points: list[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray]:
        missing = [p for p in dict.fromkeys(points) if p not in self._cache]
        fresh: dict[tuple[int, int], np.ndarray] = {}
        if missing:
            point_keys = np.array(
                [self.salts[o] ^ (g * 0x9E3779B97F4A7C15 & _MASK64) for o, g in missing],
                dtype=np.uint64,
            )
            # Both sides are already well mixed: xor them, then one multiply-xorshift-multiply
            # round (splitmix64's finaliser minus its first xorshift) and keep the top bits.
            hashed = _mix(point_keys)[:, None] ^ self.keys[None, :]
            hashed *= _MIX1
            hashed ^= hashed >> np.uint64(27)
            hashed *= _MIX2
            hashed >>= np.uint64(64 - _NORMAL_BITS)
            values = _NORMAL_TABLE.take(hashed.view(np.int64))
            for index, point in enumerate(missing):
                fresh[point] = values[index].copy()  # own memory: rows outlive the block
        grid = {p: self._cache[p] if p in self._cache else fresh[p] for p in points}
        self._cache = grid  # keep what this call used: the next tick reuses most of it
        return grid

    def sample(self, times_ms: tuple[int, ...]) -> np.ndarray:
        """Noise of every key at every time: shape ``(len(times_ms), len(keys))``."""
        plan = []
        points: list[tuple[int, int]] = []
        for o in self.octaves:
            spacing = _octave_spacing_ms(o)
            for t in times_ms:
                g, rest = divmod(t, spacing)
                frac = rest / spacing
                plan.append((o, g, frac))
                points += [(o, g), (o, g + 1)]
        grid = self._grid(points)
        out = np.zeros((len(times_ms), len(self.keys)))
        width = len(times_ms)
        for row, (o, g, frac) in enumerate(plan):
            amp = self.amplitudes[o]
            # Always the same operations in the same order for a given (key, time), so the result
            # does not depend on which other times are sampled alongside it.
            out[row % width] += (grid[(o, g)] * ((1.0 - frac) * amp)) + (grid[(o, g + 1)] * (frac * amp))
        return out


# -- the universe ---------------------------------------------------------------------------------


def _date_iso(text: str) -> str:
    return text + "T00:00:00.000Z"


def _json_number(value: float | None) -> float | int | None:
    """Supplies as CMC writes them: integral values as integers."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else float(value)


def _platform(kind: str, address: str) -> dict[str, Any]:
    pid, name, symbol, slug = _PLATFORMS[kind]
    return {"id": pid, "name": name, "symbol": symbol, "slug": slug, "token_address": address}


_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _solana_address(words: Iterable[int]) -> str:
    number = 0
    for word in words:
        number = (number << 64) | word
    chars = []
    while number:
        number, digit = divmod(number, 58)
        chars.append(_BASE58[digit])
    return "".join(reversed(chars)) or "1"


class _Universe:
    """Static facts of every simulated coin, in a fixed order (real coins first)."""

    def __init__(self, seed: int) -> None:
        real = _REAL_COINS
        n_real = len(real)
        n_syn = UNIVERSE_SIZE - n_real
        self.size = UNIVERSE_SIZE
        k = np.arange(n_syn, dtype=np.int64)
        syn_ids = SYNTHETIC_ID_BASE + k
        self.ids = np.concatenate([np.array([c[0] for c in real], dtype=np.int64), syn_ids])

        def u(salt: int) -> np.ndarray:
            return _uniform(seed, salt, syn_ids)

        # Synthetic market caps: power law in rank, jittered so ranks interleave.
        ranks = n_real + 1 + k
        syn_cap = _SYN_CAP0 * (ranks / _SYN_RANK0) ** -_SYN_SLOPE * np.exp(0.35 * _normal(seed, 1, syn_ids))
        syn_price = 10.0 ** (-6.0 + 8.0 * u(2))
        syn_circ = np.maximum(np.round(syn_cap / syn_price), 1.0)
        has_max = u(3) >= 0.45
        syn_max = np.round(syn_circ * (1.0 + 2.0 * u(4)))
        syn_total = np.round(syn_circ * (1.0 + 0.5 * u(5)))
        syn_total = np.where(has_max, np.minimum(syn_total, syn_max), syn_total)
        syn_infinite = ~has_max & (u(6) < 0.5)
        syn_pairs = np.maximum(1, np.round(400.0 * (ranks / 50.0) ** -0.8 * (0.5 + u(7)))).astype(np.int64)
        syn_turnover = 10.0 ** (-2.5 + 2.0 * u(8))
        syn_beta = 0.9 + 0.7 * u(9)
        syn_idio = 0.035 + 0.06 * np.sqrt(k / n_syn) * (0.5 + u(10))
        epoch_2017 = 1_483_228_800_000  # 2017-01-01
        span = 2_730 * _DAY_MS  # to mid-2024
        syn_added_ms = epoch_2017 + (u(11) * span // _MINUTE_MS).astype(np.int64) * _MINUTE_MS
        platform_u = u(12)
        tag_bits = _hash(seed, 13, syn_ids)
        address_words = [_hash(seed, 14 + i, syn_ids) for i in range(4)]

        # Columns used by the price model (float64, aligned with ids).
        self.base_price = np.concatenate([[c[5] for c in real], syn_price])
        self.circulating = np.concatenate([[float(c[6]) for c in real], syn_circ])
        real_diluted = [float(c[8] if c[8] is not None else c[7]) for c in real]
        self.diluted = np.concatenate([real_diluted, np.where(has_max, syn_max, syn_total)])
        self.turnover = np.concatenate([[c[10] for c in real], syn_turnover])
        kinds = [_KINDS[c[11]] for c in real]
        self.beta = np.concatenate([[kd[0] for kd in kinds], syn_beta])
        self.idio = np.concatenate([[kd[1] for kd in kinds], syn_idio])
        self.volume_noise = np.concatenate([[kd[2] for kd in kinds], np.full(n_syn, 0.4)])
        self.stable = np.zeros(self.size, dtype=bool)
        self.stable[:n_real] = [c[11] == "stable" for c in real]
        self.defi = np.zeros(self.size, dtype=bool)
        self.btc = int(np.flatnonzero(self.ids == 1)[0])
        self.eth = int(np.flatnonzero(self.ids == 1027)[0])
        self.symbol_index = {c[1]: i for i, c in enumerate(real)}

        # Static JSON parts per coin:
        # (id, name, symbol, slug, num_market_pairs, date_added, tags, max_supply,
        #  circulating_supply, total_supply, infinite_supply, platform)
        statics: list[tuple[Any, ...]] = []
        for i, c in enumerate(real):
            tags = c[13].split()
            self.defi[i] = "defi" in tags
            platform = _platform(*c[14]) if c[14] is not None else None
            supplies = (_json_number(c[8]), _json_number(c[6]), _json_number(c[7]))
            statics.append((c[0], c[2], c[1], c[3], c[9], _date_iso(c[4]), tags, *supplies, c[12], platform))
        names_tags = _SYN_TAGS
        bits = tag_bits.tolist()
        words = [w.tolist() for w in address_words]
        added = syn_added_ms.tolist()
        plat_u = platform_u.tolist()
        for j in range(n_syn):
            number = j + 1
            tags = [names_tags[(bits[j] >> (8 * s)) % len(names_tags)] for s in range(bits[j] % 3)]
            tags = list(dict.fromkeys(tags))
            pu = plat_u[j]
            if pu < 0.15:
                platform = None
            else:
                kind = "eth" if pu < 0.6 else "bnb" if pu < 0.85 else "sol"
                if kind == "sol":
                    address = _solana_address(w[j] for w in words)
                else:
                    address = "0x" + "".join(f"{w[j]:016x}" for w in words)[:40]
                platform = _platform(kind, address)
                tags.append(_ECOSYSTEM_TAGS[kind])
            self.defi[n_real + j] = "defi" in tags
            statics.append(
                (
                    int(syn_ids[j]),
                    f"Simcoin {number}",
                    f"SIM{number}",
                    f"simcoin-{number}",
                    int(syn_pairs[j]),
                    iso_from_ms(added[j]),
                    tags,
                    _json_number(syn_max[j]) if has_max[j] else None,
                    _json_number(syn_circ[j]),
                    _json_number(syn_total[j]),
                    bool(syn_infinite[j]),
                    platform,
                )
            )
        self.statics = statics
        # The same static facts as columns, for snapshots built straight from the arrays.
        self.symbols = [c[2] for c in statics]
        self.names = [c[1] for c in statics]
        self.slugs = [c[3] for c in statics]
        self.static_columns = {
            name: np.array([c[k] for c in statics], dtype=np.float64)  # None -> NaN
            for name, k in (
                ("num_market_pairs", 4),
                ("max_supply", 7),
                ("circulating_supply", 8),
                ("total_supply", 9),
            )
        }

        # The coins past UNIVERSE_SIZE, only as an aggregate market cap (they follow the market).
        tail_ranks = np.arange(UNIVERSE_SIZE + 1, ACTIVE_CRYPTOCURRENCIES + 1, dtype=np.float64)
        self.tail_cap = float(np.sum(_SYN_CAP0 * (tail_ranks / _SYN_RANK0) ** -_SYN_SLOPE))
        self.tail_turnover = 0.02


# -- the source -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Market:
    """The simulated market at one instant: the coins listed (universe rows, best first), their
    ranks and quote columns, and the global-metrics document."""

    at_ms: int
    top: np.ndarray
    ranks: np.ndarray
    columns: dict[str, np.ndarray]  # QUOTE_FIELDS, aligned with top
    global_doc: dict[str, Any]


def credit_count(coins: int) -> int:
    """CMC's listings cost for ``coins`` returned (at least 1): see :mod:`ubot.market.credits`."""
    return max(1, listings_credits(coins)) if coins else 1


class SimulatedSource:
    """A deterministic simulated market in CoinMarketCap's wire format (see the module doc)."""

    name = "simulated"

    def __init__(self, limit: int = 100, seed: int = 42, convert: str = "USD") -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 5000:
            raise ValueError(f"limit must be an integer 1..5000, got {limit!r}")
        self.limit = limit
        self.seed = int(seed)
        self.convert = convert
        #: ``--record``: each tick's documents, as CoinMarketCap would have sent them, recorded too
        #: (``market/recorder.py``: the replay format), so that anyone can make a recording.
        self.recorder: Any = None
        self.universe = universe = _Universe(self.seed)
        code = convert.upper()
        self._fiat_rate = _FIAT_PER_USD.get(code)
        self._convert_coin = universe.symbol_index.get(code)
        if self._fiat_rate is None and self._convert_coin is None:
            known = ", ".join(sorted(_FIAT_PER_USD))
            raise FatalSourceError(
                f"the simulated market cannot quote in {convert!r}; use one of {known}, "
                "or the symbol of a top coin such as BTC or ETH"
            )
        coin_keys = _hash(self.seed, 0x5EED, universe.ids)
        self._market_field = _NoiseField(_hash(self.seed, 0x3A4E7, np.array([0])), _PRICE_OCTAVES)
        self._market_volume = _NoiseField(_hash(self.seed, 0x3A4E8, np.array([0])), _VOLUME_OCTAVES)
        self._idio = _NoiseField(coin_keys, _PRICE_OCTAVES)
        self._volume = _NoiseField(_hash(self.seed, 0x70107, universe.ids), _VOLUME_OCTAVES)
        self._log_base = np.log(universe.base_price)
        self._market_sigma = universe.beta * _MARKET_VOL
        self._base_cap = universe.base_price * universe.circulating
        self._stable = np.flatnonzero(universe.stable)

    # -- the model --------------------------------------------------------------------------------

    def _prices(self, times: tuple[int, ...], market: np.ndarray) -> np.ndarray:
        """USD prices, shape (len(times), universe), given the market factor ``(T, 1)`` there."""
        log_price = (
            self._log_base + self._market_sigma * market + self.universe.idio * (self._idio.sample(times))
        )
        if len(self._stable):
            s = self._stable
            dev = log_price[:, s] - self._log_base[s]
            log_price[:, s] = self._log_base[s] + _PEG_BAND * np.tanh(dev / _PEG_BAND)
        return np.exp(log_price)

    def _volumes(self, times: tuple[int, ...], prices: np.ndarray, market_volume: np.ndarray) -> np.ndarray:
        """USD 24 h volumes at ``times`` given the prices and market-wide volume noise there."""
        u = self.universe
        noise = u.volume_noise * self._volume.sample(times) + 0.2 * market_volume
        return self._base_cap * u.turnover * (prices / u.base_price) * np.exp(noise)

    def _rates(self, prices: np.ndarray) -> np.ndarray:
        """Units of the convert currency per USD at each time, shape (T, 1)."""
        if self._fiat_rate is not None:
            return np.full((len(prices), 1), self._fiat_rate)
        return 1.0 / prices[:, self._convert_coin : self._convert_coin + 1]

    # -- MarketSource -----------------------------------------------------------------------------

    def fetch(self, at_ms: int) -> RawMarket:
        """The simulated market at ``at_ms`` (epoch ms), already in columns: the :class:`Snapshot`
        that parsing :meth:`documents` at the same instant gives, without writing the documents."""
        if self.recorder is not None:
            documents = self.documents(at_ms)
            self.recorder.write(int(at_ms), documents.listings, documents.global_metrics)
        market = self._market(int(at_ms))
        columns = {name: values[market.top] for name, values in self.universe.static_columns.items()}
        columns.update(market.columns)
        columns["rank"] = market.ranks.astype(np.float64)
        top = market.top.tolist()
        snapshot = Snapshot.of(
            timestamp_ms=market.at_ms,
            convert=self.convert,
            ids=self.universe.ids[market.top],
            symbols=tuple(map(self.universe.symbols.__getitem__, top)),
            names=tuple(map(self.universe.names.__getitem__, top)),
            slugs=tuple(map(self.universe.slugs.__getitem__, top)),
            quote_ts_ms=np.full(len(top), market.at_ms, dtype=np.int64),
            columns=columns,
            global_metrics=parse_global(market.global_doc, self.convert),
        )
        return RawMarket(snapshot=snapshot, origin="simulated")

    def documents(self, at_ms: int) -> RawMarket:
        """The simulated market at ``at_ms`` as CoinMarketCap would send it: listings and global
        metrics, in its wire shapes."""
        market = self._market(int(at_ms))
        c = market.columns
        listings = self._listings_doc(
            market.at_ms,
            market.top,
            market.ranks.tolist(),
            *(c[name].tolist() for name in QUOTE_FIELDS),
        )
        return RawMarket(listings=listings, global_metrics=market.global_doc, origin="simulated")

    def _market(self, at_ms: int) -> _Market:
        u = self.universe
        times = tuple(at_ms - lag for lag in _LAGS_MS)
        market = self._market_field.sample(times)  # (T, 1)
        usd = self._prices(times, market)  # (T, N)
        day = (times[0], times[_LAG_24H])
        market_volume = self._market_volume.sample(day)  # (2, 1)
        usd_volume = self._volumes(day, usd[[0, _LAG_24H]], market_volume)  # (2, N)
        usd_cap = usd[[0, _LAG_24H]] * u.circulating  # (2, N)
        tail_cap = u.tail_cap * np.exp(1.3 * _MARKET_VOL * market[[0, _LAG_24H], 0])
        tail_volume = tail_cap * u.tail_turnover
        total_cap = usd_cap.sum(axis=1) + tail_cap  # (2,)
        total_volume = usd_volume.sum(axis=1) + tail_volume

        rates = self._rates(usd)  # (T, 1)
        price = usd * rates
        pct = 100.0 * (price[0] / price[1:] - 1.0)  # (T-1, N)
        rate = float(rates[0, 0])
        cap = usd_cap[0] * rate
        volume = usd_volume[0] * rate
        volume_change = 100.0 * (usd_volume[0] * rate / (usd_volume[1] * float(rates[_LAG_24H, 0])) - 1)
        dominance = 100.0 * usd_cap[0] / total_cap[0]
        diluted = price[0] * u.diluted

        order = np.lexsort((u.ids, -usd_cap[0]))
        ranks = np.empty(u.size, dtype=np.int64)
        ranks[order] = np.arange(1, u.size + 1)
        top = order[: self.limit]
        changes = (np.round(pct[i, top], 8) for i in range(len(_LAGS_MS) - 1))
        columns = dict(
            zip(
                QUOTE_FIELDS,
                (
                    price[0, top],
                    volume[top],
                    np.round(volume_change[top], 4),
                    *changes,
                    cap[top],
                    np.round(dominance[top], 4),
                    np.round(diluted[top], 2),
                ),
                strict=True,
            )
        )
        derivatives = total_volume * 4.2 * np.exp(0.15 * market_volume[:, 0])
        global_doc = self._global_doc(
            at_ms,
            usd_cap,
            usd_volume,
            (total_cap, total_volume, derivatives),
            (rate, float(rates[_LAG_24H, 0])),
        )
        return _Market(at_ms, top, ranks[top], columns, global_doc)

    def close(self) -> None:
        """Nothing to release."""

    # -- documents --------------------------------------------------------------------------------

    def _elapsed(self, at_ms: int, salt: int) -> int:
        return 5 + _hash_int(self.seed, salt, at_ms) % 30

    def _listings_doc(self, at_ms: int, top: np.ndarray, *columns: list[Any]) -> dict[str, Any]:
        stamp = iso_from_ms(at_ms)
        statics = self.universe.statics
        convert = self.convert
        data = []
        append = data.append
        for i, rank, price, vol, vch, p1h, p24h, p7d, p30d, p60d, p90d, cap, dom, fdv in zip(
            top.tolist(), *columns, strict=True
        ):
            cid, name, symbol, slug, pairs, added, tags, max_s, circ, total, inf, plat = statics[i]
            quote = {
                convert: {
                    "price": price,
                    "volume_24h": vol,
                    "volume_change_24h": vch,
                    "percent_change_1h": p1h,
                    "percent_change_24h": p24h,
                    "percent_change_7d": p7d,
                    "percent_change_30d": p30d,
                    "percent_change_60d": p60d,
                    "percent_change_90d": p90d,
                    "market_cap": cap,
                    "market_cap_dominance": dom,
                    "fully_diluted_market_cap": fdv,
                    "tvl": None,
                    "last_updated": stamp,
                }
            }
            if plat is None:
                item = {
                    "id": cid,
                    "name": name,
                    "symbol": symbol,
                    "slug": slug,
                    "num_market_pairs": pairs,
                    "date_added": added,
                    "tags": [*tags],
                    "max_supply": max_s,
                    "circulating_supply": circ,
                    "total_supply": total,
                    "infinite_supply": inf,
                    "platform": None,
                    "cmc_rank": rank,
                    "self_reported_circulating_supply": None,
                    "self_reported_market_cap": None,
                    "tvl_ratio": None,
                    "last_updated": stamp,
                    "quote": quote,
                }
            else:  # tokens: CMC sends platform before infinite_supply
                item = {
                    "id": cid,
                    "name": name,
                    "symbol": symbol,
                    "slug": slug,
                    "num_market_pairs": pairs,
                    "date_added": added,
                    "tags": [*tags],
                    "max_supply": max_s,
                    "circulating_supply": circ,
                    "total_supply": total,
                    "platform": {**plat},
                    "infinite_supply": inf,
                    "cmc_rank": rank,
                    "self_reported_circulating_supply": None,
                    "self_reported_market_cap": None,
                    "tvl_ratio": None,
                    "last_updated": stamp,
                    "quote": quote,
                }
            append(item)
        return {
            "status": {
                "timestamp": stamp,
                "error_code": 0,
                "error_message": None,
                "elapsed": self._elapsed(at_ms, 0xE1),
                "credit_count": credit_count(len(data)),
                "notice": None,
                "total_count": ACTIVE_CRYPTOCURRENCIES,
            },
            "data": data,
        }

    def _global_doc(
        self,
        at_ms: int,
        usd_cap: np.ndarray,
        usd_volume: np.ndarray,
        totals: tuple[np.ndarray, np.ndarray, np.ndarray],
        rates: tuple[float, float],
    ) -> dict[str, Any]:
        """The global-metrics response; arrays hold (now, 24 h ago) in USD."""
        u = self.universe
        total_cap, total_volume, derivatives = totals
        rate, rate_day = rates
        stamp = iso_from_ms(at_ms)

        def share(index: int, when: int) -> float:
            return float(100.0 * usd_cap[when, index] / total_cap[when])

        def change(now: float, before: float) -> float:
            return float(100.0 * (now / before - 1.0))

        defi_cap = usd_cap[:, u.defi].sum(axis=1)
        defi_volume = usd_volume[:, u.defi].sum(axis=1)
        stable_cap = usd_cap[:, u.stable].sum(axis=1)
        stable_volume = usd_volume[:, u.stable].sum(axis=1)
        btc_cap, btc_volume = usd_cap[:, u.btc], usd_volume[:, u.btc]
        btc, eth = share(u.btc, 0), share(u.eth, 0)
        btc_y, eth_y = share(u.btc, 1), share(u.eth, 1)
        cap_now, cap_y = float(total_cap[0]), float(total_cap[1])
        vol_now, vol_y = float(total_volume[0]), float(total_volume[1])
        defi_change = change(defi_cap[0], defi_cap[1])
        stable_change = change(stable_cap[0], stable_cap[1])
        derivatives_change = change(derivatives[0], derivatives[1])
        conv = self.convert
        quote = {
            "total_market_cap": cap_now * rate,
            "total_volume_24h": vol_now * rate,
            "total_volume_24h_reported": vol_now * rate * _REPORTED_FACTOR,
            "altcoin_volume_24h": (vol_now - btc_volume[0]) * rate,
            "altcoin_volume_24h_reported": (vol_now - btc_volume[0]) * rate * _REPORTED_FACTOR,
            "altcoin_market_cap": (cap_now - btc_cap[0]) * rate,
            "defi_volume_24h": defi_volume[0] * rate,
            "defi_volume_24h_reported": defi_volume[0] * rate * _REPORTED_FACTOR,
            "defi_24h_percentage_change": defi_change,
            "defi_market_cap": defi_cap[0] * rate,
            "stablecoin_volume_24h": stable_volume[0] * rate,
            "stablecoin_volume_24h_reported": stable_volume[0] * rate * _REPORTED_FACTOR,
            "stablecoin_24h_percentage_change": stable_change,
            "stablecoin_market_cap": stable_cap[0] * rate,
            "derivatives_volume_24h": derivatives[0] * rate,
            "derivatives_volume_24h_reported": derivatives[0] * rate * _REPORTED_FACTOR,
            "derivatives_24h_percentage_change": derivatives_change,
            "total_market_cap_yesterday": cap_y * rate_day,
            "total_volume_24h_yesterday": vol_y * rate_day,
            "total_market_cap_yesterday_percentage_change": change(cap_now * rate, cap_y * rate_day),
            "total_volume_24h_yesterday_percentage_change": change(vol_now * rate, vol_y * rate_day),
            "last_updated": stamp,
        }
        data = {
            "active_cryptocurrencies": ACTIVE_CRYPTOCURRENCIES,
            "total_cryptocurrencies": TOTAL_CRYPTOCURRENCIES,
            "active_market_pairs": ACTIVE_MARKET_PAIRS,
            "active_exchanges": ACTIVE_EXCHANGES,
            "total_exchanges": TOTAL_EXCHANGES,
            "eth_dominance": eth,
            "btc_dominance": btc,
            "eth_dominance_yesterday": eth_y,
            "btc_dominance_yesterday": btc_y,
            "eth_dominance_24h_percentage_change": eth - eth_y,
            "btc_dominance_24h_percentage_change": btc - btc_y,
            "defi_volume_24h": float(defi_volume[0]),
            "defi_volume_24h_reported": float(defi_volume[0]) * _REPORTED_FACTOR,
            "defi_market_cap": float(defi_cap[0]),
            "defi_24h_percentage_change": defi_change,
            "stablecoin_volume_24h": float(stable_volume[0]),
            "stablecoin_volume_24h_reported": float(stable_volume[0]) * _REPORTED_FACTOR,
            "stablecoin_market_cap": float(stable_cap[0]),
            "stablecoin_24h_percentage_change": stable_change,
            "derivatives_volume_24h": float(derivatives[0]),
            "derivatives_volume_24h_reported": float(derivatives[0]) * _REPORTED_FACTOR,
            "derivatives_24h_percentage_change": derivatives_change,
            "quote": {conv: {k: float(v) if k != "last_updated" else v for k, v in quote.items()}},
            "last_updated": stamp,
        }
        return {
            "status": {
                "timestamp": stamp,
                "error_code": 0,
                "error_message": None,
                "elapsed": self._elapsed(at_ms, 0xE2),
                "credit_count": 1,
                "notice": None,
            },
            "data": data,
        }
