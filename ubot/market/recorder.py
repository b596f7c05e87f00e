"""Recording: every tick's raw CoinMarketCap answers, one file per tick, ready for ``--source replay``.

A file holds ``{"listings": <listings response>, "global": <global-metrics response or null>}``,
the format :mod:`ubot.market.replay` reads. Names are ``YYYYMMDDTHHMMSSZ-NNNNNN.json`` (tick time
in UTC, then a sequence number), so sorting by name sorts by time, which is the order a replay
plays. Each file is written to a temporary name in the same directory, flushed to disk and renamed
into place: a crash leaves either the whole file or none (the replay ignores the ``.tmp`` leftovers).
With ``compress=True`` files are gzip'ed (``.json.gz``, also replayable): a day of 5000 coins a
minute is about 7 GB as plain JSON, a tenth of that compressed.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

_NAME = re.compile(r"^\d{8}T\d{6}Z-(\d+)\.json(\.gz)?$")


class Recorder:
    def __init__(self, directory: str | os.PathLike[str], compress: bool = False) -> None:
        self.directory = os.fspath(directory)
        self.compress = compress
        os.makedirs(self.directory, exist_ok=True)
        # Continue the sequence of an earlier run into the same directory.
        numbers = [int(m.group(1)) for m in map(_NAME.match, os.listdir(self.directory)) if m]
        self.sequence = max(numbers, default=0)

    def __repr__(self) -> str:
        return f"Recorder({self.directory!r})"

    def write(self, at_ms: int, listings: Mapping[str, Any], global_doc: Mapping[str, Any] | None) -> str:
        """Record one tick's answers; return the file's path. Raises ``OSError`` (disk full...)."""
        self.sequence += 1
        stamp = datetime.fromtimestamp(at_ms // 1000, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"{stamp}-{self.sequence:06d}.json" + (".gz" if self.compress else "")
        path = os.path.join(self.directory, name)
        body = json.dumps({"listings": listings, "global": global_doc}, separators=(",", ":")).encode()
        if self.compress:
            body = gzip.compress(body, compresslevel=6, mtime=0)
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return path
