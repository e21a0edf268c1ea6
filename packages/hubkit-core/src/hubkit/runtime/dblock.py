"""One hub process per SQLite database: an exclusive ``flock`` on a lock file beside the database file.

SQLite has one writer and no way for two processes to agree on who runs the hub's singleton duties, so a second
``hubkit`` on the same file would double every adoption, poll and spawn. The lock is held for the life of the
process (the kernel drops it when the process dies, ``kill -9`` included) and only the serving entry points take
it: ``hubkit token``, ``db backup`` and other short commands still open the database while the hub runs.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import URL

from ..errors import HubkitError

LOCK_SUFFIX = ".hub-lock"


class DatabaseInUse(HubkitError):
    """Another hub process serves this SQLite database."""


def lock_path(url: URL) -> Path | None:
    """The lock file of a SQLite database file; ``None`` for PostgreSQL and in-memory SQLite."""
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return None
    return Path(url.database + LOCK_SUFFIX)


class SqliteProcessLock:
    """Held from :meth:`acquire` until :meth:`release` or the process's end."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, url: URL) -> SqliteProcessLock | None:
        path = lock_path(url)
        if path is None:
            return None
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            by = f" (pid {holder})" if holder else ""
            raise DatabaseInUse(
                f"another hub process{by} already serves the SQLite database {url.database}; "
                "SQLite allows one hub process per database: to run hub replicas, use PostgreSQL "
                '([hub] db_url = "postgresql://...")'
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None
