"""A throwaway PostgreSQL cluster for tests: ``initdb`` + ``pg_ctl`` in a temp dir, unix socket only.

As root the cluster runs as the ``postgres`` OS user (PostgreSQL refuses to run as root). Databases are
created per test, so tests never see each other's tables.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path


def pg_bindir() -> Path | None:
    env = os.environ.get("HUBKIT_PG_BINDIR")
    if env:
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PgCluster:
    bindir: Path
    datadir: Path
    sockdir: Path
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{self.user}@/{database}?host={self.sockdir}&port={self.port}"

    def _run(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        full = list(cmd)
        if os.geteuid() == 0:
            full = ["runuser", "-u", self.user, "--", *full]
        return subprocess.run(full, capture_output=True, text=True, timeout=120, check=False)

    def psql(self, sql: str, database: str = "postgres") -> str:
        r = self._run(
            str(self.bindir / "psql"),
            "-h",
            str(self.sockdir),
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
            sql,
        )
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return r.stdout

    def advisory_holders(self, database: str, classid: int) -> list[tuple[int, str]]:
        """``(key, application_name)`` of every session of ``database`` holding an advisory lock of ``classid``
        (hubkit's are in :mod:`hubkit.storage.locks`; a hub's sessions are named ``hubkit <instance>``)."""
        out = self.psql(
            "SELECT l.objid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            f"WHERE l.locktype = 'advisory' AND l.granted AND l.classid = {int(classid)} "
            f"AND l.database = (SELECT oid FROM pg_database WHERE datname = '{database}')",
            database,
        )
        return [
            (int(key), app) for key, app in (line.split("|", 1) for line in out.splitlines() if "|" in line)
        ]

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop")
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


# The cluster listens on a Unix socket only (listen_addresses=''), in a directory of its own: the port just names
# the socket file there, so every cluster can use the default one and nothing races for a TCP port.
PG_PORT = 5432


def start_cluster() -> PgCluster:
    """Start a cluster or raise RuntimeError saying why it cannot."""
    bindir = pg_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found; apt install postgresql")
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise RuntimeError("running as root but there is no 'postgres' OS user") from None
    root = Path(tempfile.mkdtemp(prefix="hubkit-pg-"))
    datadir, sockdir = root / "data", root / "sock"
    sockdir.mkdir()
    if os.geteuid() == 0:
        os.chown(root, pw.pw_uid, pw.pw_gid)
        os.chown(sockdir, pw.pw_uid, pw.pw_gid)
    cluster = PgCluster(bindir, datadir, sockdir, PG_PORT, user)
    r = cluster._run(
        str(bindir / "initdb"), "-D", str(datadir), "-U", user, "-A", "trust", "--no-sync", "-E", "UTF8"
    )
    if r.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {r.stderr.strip()}")
    opts = f"-k {sockdir} -p {cluster.port} -c listen_addresses='' -c fsync=off -c max_connections=200"
    r = cluster._run(
        str(bindir / "pg_ctl"),
        "-D",
        str(datadir),
        "-o",
        opts,
        "-l",
        str(root / "pg.log"),
        "-w",
        "-t",
        "60",
        "start",
    )
    if r.returncode != 0:
        log = (root / "pg.log").read_text(errors="replace") if (root / "pg.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"pg_ctl start failed: {r.stderr.strip()} {log[-500:]}")
    return cluster
