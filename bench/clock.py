#!/usr/bin/env python3
"""Clock benchmark: lateness p50/p99/max, drift and idle CPU over many short-interval ticks.

    python bench/clock.py [--interval 0.05] [--ticks 400]

Runs the real ClockActor on the system clock. The tick target is a minimal actor that reports each
tick finished at once, so what is measured is the clock itself: how late each tick fires after its
deadline, whether deadlines stay exact multiples of the interval (no drift), and how much CPU the
process burns while waiting (should be ~0: one timed wait per tick, no polling).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import pykka  # noqa: E402

from ubot.actors.clock import ClockActor  # noqa: E402
from ubot.clocks import SystemClock  # noqa: E402
from ubot.messages import GetClockStats, TickFinished, WatchTicks  # noqa: E402
from ubot.schedule import Tick  # noqa: E402


class Sink(pykka.ThreadingActor):
    """Receives ticks, records them, tells the clock each one is finished."""

    def __init__(self, wanted: int, done: threading.Event) -> None:
        super().__init__()
        self.clock: pykka.ActorRef | None = None
        self.ticks: list[Tick] = []
        self.wanted = wanted
        self.done = done

    def on_receive(self, message):
        if isinstance(message, WatchTicks):
            self.clock = message.clock
        elif isinstance(message, Tick):
            self.ticks.append(message)
            if len(self.ticks) >= self.wanted:
                self.done.set()
            self.clock.tell(TickFinished(message.number))
        elif message == "ticks":
            return list(self.ticks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=0.05, help="seconds (default 0.05)")
    parser.add_argument("--ticks", type=int, default=400, help="ticks to measure (default 400)")
    args = parser.parse_args()

    done = threading.Event()
    sink = Sink.start(args.ticks, done)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    clock = ClockActor.start(args.interval, SystemClock(), sink, sink)
    done.wait()
    cpu1, wall1 = time.process_time(), time.perf_counter()
    stats = clock.ask(GetClockStats())
    ticks = sink.ask("ticks")[: args.ticks]
    clock.stop()
    sink.stop()

    lateness = np.array([t.fired_ms - t.scheduled_ms for t in ticks], dtype=float)
    interval_ms = args.interval * 1000
    k = np.array([t.scheduled_ms for t in ticks], dtype=float) / interval_ms
    off_grid = np.abs(k - np.round(k)).max() * interval_ms  # ms away from an exact multiple
    span = (ticks[-1].scheduled_ms - ticks[0].scheduled_ms) / interval_ms
    print(f"clock benchmark: {len(ticks)} ticks every {args.interval:g} s on the system clock")
    print(
        f"  lateness ms (clock's own, sub-ms): p50 {stats.lateness_ms_p50:.3f}  "
        f"p99 {stats.lateness_ms_p99:.3f}  max {stats.lateness_ms_max:.3f}"
    )
    print(
        f"  lateness ms (tick stamps, 1 ms resolution): p50 {np.percentile(lateness, 50):.0f}  "
        f"p99 {np.percentile(lateness, 99):.0f}  max {lateness.max():.0f}"
    )
    print(
        f"  drift: deadlines off the k*interval grid by at most {off_grid:.3f} ms; "
        f"first..last spans {span:.0f} intervals for {len(ticks) - 1} steps; missed {stats.missed_ticks}"
    )
    cpu = (cpu1 - cpu0) / (wall1 - wall0) * 100
    print(
        f"  process CPU while ticking: {cpu:.2f} % of one core ({cpu1 - cpu0:.3f} s over {wall1 - wall0:.1f} s)"
    )
    target = stats.lateness_ms_p99 <= 5 and off_grid < 0.5 and stats.missed_ticks == 0
    print(f"  target (p99 <= 5 ms, no drift, no missed tick): {'MET' if target else 'NOT MET'}")


if __name__ == "__main__":
    main()
