"""A progress display for long replays and backfills: a bar on a terminal, a line per 10 % in a log file."""

from __future__ import annotations

import sys
from typing import TextIO


def bar(done: int, total: int, width: int = 30) -> str:
    """``[#########.....................]  30% 300/1000``"""
    fraction = 0.0 if total <= 0 else min(1.0, done / total)
    filled = round(fraction * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}% {done}/{total}"


class Progress:
    def __init__(self, stream: TextIO | None = None, minimum: int = 20, label: str = "replay") -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self.minimum = minimum  # replays shorter than this show nothing
        self._last_decile = -1

    def update(self, done: int, total: int) -> None:
        if total < self.minimum:
            return
        if self.stream.isatty():
            end = "\n" if done >= total else ""
            self.stream.write("\r" + bar(done, total) + end)
            self.stream.flush()
            return
        decile = done * 10 // total
        if decile != self._last_decile:
            self._last_decile = decile
            self.stream.write(f"{self.label} {bar(done, total)}\n")
            self.stream.flush()
