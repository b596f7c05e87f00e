"""Whether the SQLite database file is still the one uBot opened.

Deleting (or replacing) the file of a running SQLite database does not stop uBot by itself: its open
connections go on writing to the deleted file, and everything is lost at the next start. The watch
remembers the file's identity (``st_dev``, ``st_ino``) when it is opened, and :meth:`check` says when
the path is gone or is another file. The Monitor checks once per tick (a tick that failed to write
ends there too); from the first problem on, :func:`ubot.models.db.writing` refuses every write.
"""

from __future__ import annotations

import os

from ubot.models.db import refuse_writes, sqlite_path


class DatabaseWatch:
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        info = os.stat(self.path)
        self.identity = (info.st_dev, info.st_ino)
        self.lost: str | None = None

    def check(self) -> str | None:
        """``None`` while the file is the one opened; else why not (and writes are refused)."""
        if self.lost is not None:
            return self.lost
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            reason = f"database file {self.path} was deleted while uBot was running"
        except OSError as exc:
            reason = f"database file {self.path} cannot be reached: {exc.strerror}"
        else:
            if (info.st_dev, info.st_ino) == self.identity:
                return None
            reason = f"database file {self.path} was replaced by another file while uBot was running"
        self.lost = reason
        refuse_writes(reason)
        return reason


def watch_database(url: str) -> DatabaseWatch | None:
    """The watch of a SQLite database (opened already); ``None`` for PostgreSQL."""
    path = sqlite_path(url)
    return None if path is None else DatabaseWatch(path)
