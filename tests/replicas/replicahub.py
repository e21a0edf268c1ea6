"""Hub replicas as real ``hubkit`` processes on one PostgreSQL database, for the tests of this folder.

Each replica has its own data dir and config (port 0, no proxy, the test spawner) and the same ``db_url``; what
each one does is read from its log and from PostgreSQL's ``pg_locks``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubkit.runtime.leases import duty_key
from hubkit.storage.locks import DUTY_LOCKS
from hubkit.testing.processes import cli_token, pid_alive, start_hub_port_zero, terminate

DUTIES = ("adopt-and-reconcile-routes", "poll-servers", "cull-idle-servers")


def held_line(duty: str) -> str:
    return f"duty {duty}: held by this replica"


@dataclass
class Replica:
    name: str
    config: Path
    log: Path
    data: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def holds(self, duty: str) -> bool:
        """Did this replica's latest life take ``duty`` (its log since the last start)?"""
        return held_line(duty) in self.text().rsplit("hubkit-replica-start", 1)[-1]

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)


@dataclass
class Replicas:
    tmp: Path
    db_url: str
    spawner: str = ""  # extra lines of [spawner.test]
    spawn_limit: int = 0  # [spawner] concurrent_spawn_limit (0: none)
    hub: str = ""  # extra lines of [hub]
    auth: str = ""  # an [auth] section and its own (the default: dummy, any password)
    members: list[Replica] = field(default_factory=list)

    def add(self, name: str) -> Replica:
        data = self.tmp / name
        config = self.tmp / f"{name}.toml"
        config.write_text(
            f"""
[hub]
ip = "127.0.0.1"
port = 0
data_dir = "{data}"
db_url = "{self.db_url}"
admin_users = ["boss"]
log_level = "INFO"
{self.hub}
{self.auth}

[spawner]
backend = "test"
poll_interval = 1
concurrent_spawn_limit = {self.spawn_limit}

[spawner.test]
mode = "process"
{self.spawner}

[proxy]
backend = "none"

[culler]
enabled = true
every = 1
timeout = 3600
"""
        )
        rep = Replica(name, config, self.tmp / f"{name}.log", data)
        self.members.append(rep)
        return rep

    def start(self, rep: Replica) -> Replica:
        with rep.log.open("a") as fh:
            fh.write("\nhubkit-replica-start\n")
        rep.proc, ports = start_hub_port_zero(rep.config, rep.log, data_dir=rep.data)
        rep.port = ports["port"]
        return rep

    def upgrade(self) -> None:
        """``hubkit db upgrade`` once, before replicas start (they never race to create the schema)."""
        first = self.members[0]
        subprocess.run(
            [sys.executable, "-m", "hubkit.cli", "-f", str(first.config), "db", "upgrade"],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def stop_all(self) -> None:
        for rep in self.members:
            rep.stop()


@contextlib.contextmanager
def replica_pair(
    cluster: Any, tmp: Path, *, spawner: str = "", spawn_limit: int = 0, hub: str = "", auth: str = ""
) -> Iterator[Any]:
    """Replicas a and b on a fresh database: b starts first, so it holds the singleton duties (the take-over of a
    dead replica's spawns among them) and a drives the spawns a test sends it. Yields (replicas, a, b, database,
    an admin token); stops both and the user servers they left."""
    db = cluster.create_database()
    reps = Replicas(tmp, cluster.url(db), spawner=spawner, spawn_limit=spawn_limit, hub=hub, auth=auth)
    a, b = reps.add("a"), reps.add("b")
    reps.upgrade()
    try:
        reps.start(b)
        reps.start(a)
        yield reps, a, b, db, cli_token(a.config, "boss")
    finally:
        reps.stop_all()
        kill_user_servers(cluster, db)


def kill_user_servers(cluster: Any, db: str) -> None:
    """User servers outlive the hub by design: end those a test left (the test spawner records their pid)."""
    out = cluster.psql("SELECT state->>'pid' FROM servers WHERE state->>'pid' IS NOT NULL", db)
    for pid in (int(p) for p in out.split() if p.isdigit()):
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)


def duty_holders(cluster: Any, database: str) -> dict[str, list[str]]:
    """Per duty, the ``application_name`` of every database session holding its lock (``hubkit <instance>``)."""
    by_key: dict[int, list[str]] = {}
    for key, app in cluster.advisory_holders(database, DUTY_LOCKS):
        by_key.setdefault(key, []).append(app)
    return {d: by_key.get(duty_key(d), []) for d in DUTIES}


def wait_for(what: str, check: Any, limit: float) -> float:
    """Seconds until ``check()`` is true; fails after ``limit``."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > limit:
            raise AssertionError(f"{what}: not within {limit}s")
        time.sleep(0.05)
    return time.monotonic() - t0
