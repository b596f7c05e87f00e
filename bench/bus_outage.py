"""What a publish costs the engine's tick while Redis is down (``ubot/bus/outage.py``).

A RedisBus aimed at a port where connections are refused (nothing to start): the first publish of
the outage (retried within ``write_budget_s``), then ``--count`` more (refused at once, but one
single-attempt probe per ``retry_s``). Prints the first call's time and the median and p99 of the
others.

    .venv/bin/python bench/bus_outage.py --count 2000
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import time

from ubot.bus import TICKS, BusUnavailable, TickReady
from ubot.bus.redis_streams import RedisBus


def publish_ms(bus: RedisBus, number: int) -> float:
    started = time.perf_counter()
    with contextlib.suppress(BusUnavailable):
        bus.publish(TICKS, TickReady(number, number, 0, 0, 0, ()))
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    with socket.socket() as held:  # bound, never listening: a connection is refused
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        bus = RedisBus(f"redis://127.0.0.1:{port}/0", prefix="ubot-bench-outage")
        try:
            first = publish_ms(bus, 0)
            times = sorted(publish_ms(bus, n) for n in range(1, args.count + 1))
        finally:
            bus.close()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"first publish of the outage: {first:.1f} ms (write_budget_s {bus.write_budget_s:g} s)")
    print(
        f"next {args.count} publishes: median {statistics.median(times) * 1000:.1f} us, "
        f"p99 {p99 * 1000:.1f} us, max {times[-1]:.2f} ms ({bus.outage.refused} refused without a try)"
    )


if __name__ == "__main__":
    main()
