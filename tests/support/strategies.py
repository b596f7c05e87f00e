"""Strategies written straight to the database, in bulk, for the tests and benchmarks that need tens
of thousands of them (``bench/scale.py`` part D, ``bench/stop.py``, ``tests/test_roles_stop.py``):
what the API would store, without a request per strategy."""

from __future__ import annotations

import time

#: The conditions of :func:`seed_strategies`, in turn: ``{x}`` a threshold drawn for each strategy.
SHAPES = (
    ("price > {x}", (1.0, 100_000.0)),
    ("percent_change_1h > {x}", (-3.0, 3.0)),
    ("percent_change_24h < {x}", (-10.0, 10.0)),
    ("rsi(14) < {x}", (20.0, 40.0)),
    ("ema(20) > price * {x}", (0.98, 1.02)),
    ("price > sma(50) and volume_24h > {x}", (1e6, 1e9)),
)


def seed_strategies(db_url: str, count: int, top_n: int, per_user: int = 50) -> None:
    """``count`` enabled strategies (``per_user`` a user, the API's most), written in bulk: users,
    then strategies, ``insert_many`` in chunks inside one transaction each. Deliveries: none (an
    alert is written and logged only)."""
    import random

    from ubot.models.db import open_database
    from ubot.models.tables import Strategy, User
    from ubot.rules import compile_condition

    rng = random.Random(11)
    db = open_database(db_url)
    now = int(time.time() * 1000)
    users = (count + per_user - 1) // per_user
    with db.atomic():
        rows = [
            {
                "username": f"bench{i}",
                "email": f"bench{i}@example.com",
                "password_hash": "-",
                "created_at": now,
                "password_changed_at": now,
            }
            for i in range(users)
        ]
        for start in range(0, len(rows), 1000):
            User.insert_many(rows[start : start + 1000]).execute()
    ids = [
        u for (u,) in User.select(User.id).where(User.username.startswith("bench")).order_by(User.id).tuples()
    ]
    indicators = {}
    for shape, _ in SHAPES:
        called = compile_condition(shape.format(x=1)).indicators
        indicators[shape] = sorted(str(call) for call in called)
    rows = []
    for k in range(count):
        shape, (low, high) = SHAPES[k % len(SHAPES)]
        rows.append(
            {
                "user": ids[k // per_user],
                "name": f"s{k}",
                "condition": shape.format(x=round(rng.uniform(low, high), 4)),
                "indicators": indicators[shape],
                "timeframe": "1m",
                "symbols": None,
                "top_n": top_n,
                "channels": [],
                "frequency": "once_per_crossing",
                "cooldown_s": 0,
                "enabled": True,
                "created_at": now,
                "updated_at": now,
            }
        )
    with db.atomic():
        for start in range(0, len(rows), 2000):
            Strategy.insert_many(rows[start : start + 2000]).execute()
    db.close()
