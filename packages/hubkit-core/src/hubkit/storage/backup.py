"""``hubkit db backup`` / ``hubkit db restore`` for the SQLite default.

A backup is taken online with SQLite's backup API in a single step: one read transaction, so the copy is one
consistent snapshot while the hub goes on writing (WAL readers never block writers). A restore never writes
over a database some process has open, and keeps the database it replaces beside it.

"Has it open" is read from SQLite's own locks: every connection to a WAL database holds a shared lock on one
byte of the ``-shm`` file (the "dead man switch" byte, offset 128 in SQLite's unix VFS) for as long as it is
open; ``F_GETLK`` names the process holding it without touching the lock.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import URL

from ..errors import HubkitError
from .engine import SQLITE_BUSY_TIMEOUT_MS, is_sqlite

SHM_DMS_OFFSET = 128
_FLOCK = "hhqqi"  # struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid
_FLOCK_SIZE = 32


class BackupError(HubkitError):
    """A backup or restore that cannot go ahead; the message says why and what to do instead."""


@dataclass(frozen=True)
class DbSummary:
    path: str
    size: int
    revisions: tuple[str, ...]
    users: int
    servers: int


def sqlite_path(url: URL, action: str) -> str:
    if not is_sqlite(url):
        tool = "pg_dump (e.g. pg_dump -Fc -f hubkit.dump DBNAME)" if action == "backup" else "pg_restore"
        raise BackupError(
            f"`hubkit db {action}` covers the SQLite default; this hub uses {url.drivername.split('+')[0]}: "
            f"use {tool}, which copies a live PostgreSQL database consistently"
        )
    if not url.database or url.database == ":memory:":
        raise BackupError("the database is in memory: there is nothing on disk to back up or restore")
    return url.database


def holders(db_path: str) -> list[int]:
    """Pids of other processes that have the WAL database ``db_path`` open (empty when none)."""
    shm = db_path + "-shm"
    try:
        fd = os.open(shm, os.O_RDONLY)
    except FileNotFoundError:
        return []  # no connection has the database open in WAL mode
    try:
        probe = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, SHM_DMS_OFFSET, 1, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, probe.ljust(_FLOCK_SIZE, b"\0"))
        l_type, _, _, _, pid = struct.unpack(_FLOCK, answer[: struct.calcsize(_FLOCK)])
    finally:
        os.close(fd)  # our process held no lock on the file, so closing releases nothing
    return [] if l_type == fcntl.F_UNLCK else [pid]


def _connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        return sqlite3.connect(
            f"file:{Path(path).as_posix()}?mode=ro", uri=True, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000
        )
    return sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)


def summary(path: str) -> DbSummary:
    """What a hubkit SQLite file holds; raises BackupError when it is damaged or not a hubkit database."""
    try:
        con = _connect(path, readonly=True)
        try:
            check = con.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"{path} is damaged: integrity check says {check!r}")
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"alembic_version", "users", "servers"} <= tables:
                raise BackupError(f"{path} is not a hubkit database (no hubkit tables)")
            revisions = tuple(sorted(r[0] for r in con.execute("SELECT version_num FROM alembic_version")))
            users = con.execute("SELECT count(*) FROM users").fetchone()[0]
            servers = con.execute("SELECT count(*) FROM servers").fetchone()[0]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a readable SQLite database: {exc}") from None
    return DbSummary(path, os.path.getsize(path), revisions, int(users), int(servers))


def _copy(src_path: str, dst_path: str) -> None:
    """Copy with the backup API in one step, into a fresh file left in rollback-journal mode (one file)."""
    src = _connect(src_path)
    try:
        dst = sqlite3.connect(dst_path)
        try:
            src.backup(dst)  # pages=-1: the whole database under one read transaction
            dst.execute("PRAGMA journal_mode=DELETE")
            dst.commit()
        finally:
            dst.close()
    finally:
        src.close()
    with open(dst_path, "rb") as f:
        os.fsync(f.fileno())


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def backup(db_path: str, dest: str) -> DbSummary:
    """Back ``db_path`` up to ``dest`` (a file, or a directory to put ``hubkit-<time>.sqlite`` in)."""
    if not os.path.isfile(db_path):
        raise BackupError(f"no database at {db_path}")
    target = Path(dest)
    if target.is_dir():
        target = target / f"hubkit-{_stamp()}.sqlite"
    if target.exists():
        raise BackupError(f"{target} exists already: choose another name (nothing was overwritten)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # tokens' hashes, auth state: owner only
    os.close(fd)
    try:
        _copy(db_path, str(tmp))
        summary(str(tmp))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return summary(str(target))


def restore(backup_path: str, db_path: str, known_revisions: set[str]) -> tuple[DbSummary, str | None]:
    """Replace ``db_path`` with ``backup_path``; returns the restored summary and where the old database was
    kept (``None`` when there was none)."""
    if not os.path.isfile(backup_path):
        raise BackupError(f"no backup file at {backup_path}")
    if os.path.abspath(backup_path) == os.path.abspath(db_path):
        raise BackupError("the backup and the hub's database are the same file")
    info = summary(backup_path)
    unknown = [r for r in info.revisions if r not in known_revisions]
    if unknown:
        raise BackupError(
            f"{backup_path} has schema {', '.join(unknown)}, which this hubkit does not know "
            "(a backup from a newer hubkit?): restore it with that version"
        )
    busy = holders(db_path)
    if busy:
        raise BackupError(
            f"{db_path} is open in process {', '.join(map(str, busy))} (a running hub?): stop it, then restore"
        )
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    kept = None
    if os.path.exists(db_path):
        kept = f"{db_path}.before-restore-{_stamp()}"
        for suffix in ("", "-wal", "-shm"):  # a left-over WAL belongs to the old file: it moves with it
            if os.path.exists(db_path + suffix):
                os.replace(db_path + suffix, kept + suffix)
    tmp = f"{db_path}.restoring"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    try:
        _copy(backup_path, tmp)
        os.replace(tmp, db_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return summary(db_path), kept
