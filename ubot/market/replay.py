"""Replay: play a directory of recorded CoinMarketCap responses, one file per tick, in name order.

A file is either a bare ``/v1/cryptocurrency/listings/latest`` response (``{"status", "data"}``) or
``{"listings": <that>, "global": <a /v1/global-metrics/quotes/latest response or null>}`` (what
``--record`` writes). ``.json`` and gzip-compressed ``.json.gz`` files are read; other files are
ignored. Timestamps come from the data. An unreadable or malformed file skips its tick with a
message naming the file and the problem, and the replay goes on with the next one.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Mapping
from typing import Any

import msgspec

from ubot.market.snapshot import RawMarket
from ubot.market.source import FatalSourceError, SourceError, SourceExhausted

SUFFIXES = (".json", ".json.gz")
_JSON = msgspec.json.Decoder()  # C speed; the parser then reads the documents with typed Structs


def replay_files(directory: str) -> list[str]:
    """The replayable files of ``directory``, sorted by name. Raises FatalSourceError if unusable."""
    if not os.path.isdir(directory):
        raise FatalSourceError(f"replay directory {directory} does not exist or is not a directory")
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(SUFFIXES))
    except OSError as exc:
        raise FatalSourceError(f"cannot list replay directory {directory}: {exc.strerror}") from None
    if not names:
        raise FatalSourceError(f"replay directory {directory} has no .json or .json.gz files")
    return [os.path.join(directory, name) for name in names]


def split_recording(doc: Any) -> tuple[Mapping[str, Any], Any]:
    """(listings response, global response or None) of one recorded file's JSON."""
    if isinstance(doc, Mapping) and "listings" in doc:
        return doc["listings"], doc.get("global")
    if isinstance(doc, Mapping) and "status" in doc:
        return doc, None
    raise ValueError('expected a listings response {"status", "data"} or {"listings": ..., "global": ...}')


class ReplaySource:
    name = "replay"

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.files = replay_files(directory)
        self.position = 0

    def fetch(self, at_ms: int) -> RawMarket:
        if self.position >= len(self.files):
            raise SourceExhausted(f"replay of {self.directory} finished ({len(self.files)} files)")
        path = self.files[self.position]
        self.position += 1
        name = os.path.basename(path)
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rb") as handle:
                doc = _JSON.decode(handle.read())
            listings, global_doc = split_recording(doc)
        except OSError as exc:
            raise SourceError(f"replay file {name}: cannot read: {exc.strerror or exc}") from None
        except (EOFError, zlib.error) as exc:
            raise SourceError(f"replay file {name}: corrupt gzip data: {exc}") from None
        except ValueError as exc:  # msgspec.DecodeError is one
            raise SourceError(f"replay file {name}: not a recorded response: {exc}") from None
        return RawMarket(
            listings=listings,
            global_metrics=global_doc,
            position=(self.position, len(self.files)),
            origin=name,
        )

    def close(self) -> None:
        pass
