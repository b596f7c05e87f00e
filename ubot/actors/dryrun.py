"""DryRun actor: runs one dry run at a time for the gateway, off the request's thread and off the
History actor, on its own connection (a :class:`~ubot.actors.stage.Reader`; a dry run reads and
computes for up to a few seconds). The gateway keeps a few of them
(``scan/dryrun.py: WORKERS``) and hands each request to an idle one (``http/gateway.py``)."""

from __future__ import annotations

import functools
from typing import Any

from ubot.actors.stage import Reader, unexpected
from ubot.messages import RunDryRun
from ubot.models.dryrun import DryRunReader
from ubot.scan import dryrun


class DryRunActor(Reader):
    def __init__(self, reader: DryRunReader) -> None:
        super().__init__()
        self.reader = reader

    @functools.singledispatchmethod
    def on_receive(self, message: Any) -> Any:
        unexpected(self, message)

    @on_receive.register
    def _run(self, message: RunDryRun) -> dryrun.DryRunResult:
        return dryrun.dry_run(message.spec, self.reader.read)
