"""Hub processes for the hub-side benchmarks and the regression guard, started with their shipped commands.

* :class:`Hubkit`: ``hubkit -f hubkit.toml`` (one process, the stand-in spawner's in-process servers, no proxy);
  its admin token comes from ``hubkit token`` (a generated token).
* :class:`HubkitWorkers`: ``hubkit -f hubkit.toml --workers N`` on PostgreSQL (a supervisor and N worker processes
  sharing the hub's port); its hub CPU is that of the whole process tree.
* :class:`JupyterHub`: ``jupyterhub -f jupyterhub_config.py`` 6.1.1 (one process, an in-hub listener spawner and
  no proxy, :mod:`jh_bench_config`); its admin token comes from ``jupyterhub token`` (a generated token).

Both can run on SQLite or on a PostgreSQL database. What is measured of them (hub CPU from ``/proc``, load from
``wrk``, spawn waves over the REST API) is in :mod:`hubload`. Everything talks to 127.0.0.1 on ports bound
and read back first.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
ADMIN = "bench-admin"
PAGED = {"Accept": "application/jupyterhub-pagination+json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (children of any of its threads), from /proc."""
    found, i = [pid], 0
    while i < len(found):
        for children in Path(f"/proc/{found[i]}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                found += [int(c) for c in children.read_text().split()]
        i += 1
    return found


def tree_cpu_seconds(pids: list[int]) -> float:
    """CPU of the processes still alive among ``pids`` (one that exited takes its CPU time with it)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += cpu_seconds(pid)
    return total


def loadavg() -> float:
    return os.getloadavg()[0]


def commit() -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return out.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for dist in ("hubkit-core", "jupyterhub", "sqlalchemy", "starlette", "uvicorn", "asyncpg"):
        with contextlib.suppress(PackageNotFoundError):
            out[dist] = version(dist)
    return out


@dataclass
class Database:
    """Where a hub keeps its state: ``kind`` is ``sqlite`` or ``postgres``; ``urls`` builds each hub's URL."""

    kind: str
    cluster: Any = None  # hubkit.testing.postgres.PgCluster
    names: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, kind: str) -> Database:
        if kind == "sqlite":
            return cls(kind)
        from hubkit.testing.postgres import start_cluster

        return cls(kind, start_cluster())

    def hubkit_url(self, data: Path) -> str:
        if self.cluster is None:
            return f"sqlite:///{data / 'hubkit.sqlite'}"
        name = self.cluster.create_database()
        self.names.append(name)
        return str(self.cluster.url(name))

    def jupyterhub_url(self, data: Path) -> str:
        if self.cluster is None:
            return f"sqlite:///{data / 'jupyterhub.sqlite'}"
        name = self.cluster.create_database()
        self.names.append(name)
        c = self.cluster
        return f"postgresql+psycopg2://{c.user}@/{name}?host={c.sockdir}&port={c.port}"

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


class HubProcess:
    """A hub started as its own process; ``pid`` is the process whose CPU is measured."""

    label = "hub"
    log_name = "hub.log"

    def __init__(self, data: Path, db: Database, *, spawn_limit: int = 100) -> None:
        self.data = data
        self.db = db
        self.spawn_limit = spawn_limit
        data.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""
        self.env: dict[str, str] = {}  # extra environment for the hub's commands

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def processes(self) -> list[int]:
        """The processes whose CPU is the hub's."""
        return [self.pid]

    def cpu(self) -> float:
        """The hub's CPU seconds so far (see :meth:`processes`)."""
        return tree_cpu_seconds(self.processes())

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write the config, create the schema and the admin user, generate the admin token."""
        raise NotImplementedError

    def environ(self) -> dict[str, str]:
        return {**os.environ, **self.env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.data,
            env=self.environ(),
            stdout=(self.data / self.log_name).open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited: {(self.data / self.log_name).read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/hub/api", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.label} did not answer within 120 s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/hub/api", headers={"Authorization": f"token {self.token}"}, timeout=300
        )

    def add_users(self, names: list[str]) -> None:
        with self.client() as c:
            for i in range(0, len(names), 200):
                r = c.post("/users", json={"usernames": names[i : i + 200]})
                if r.status_code not in (201, 409):
                    raise RuntimeError(f"{self.label}: creating users failed: {r.status_code} {r.text[:300]}")

    def bulk_users(self, names: list[str]) -> None:
        raise NotImplementedError

    def _run(self, cmd: list[str]) -> str:
        r = subprocess.run(cmd, cwd=self.data, env=self.environ(), capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr[-2000:]}")
        return r.stdout


def stop_all(hubs: list[HubProcess], db: Database, tmp: Path) -> None:
    """A run's end: every hub, then the database they shared, then their files."""
    try:
        for hub in hubs:
            hub.stop()
    finally:
        db.stop()
        shutil.rmtree(tmp, ignore_errors=True)


HUBKIT_TOML = """\
[hub]
ip = "127.0.0.1"
port = {port}
data_dir = "{data}"
db_url = "{db_url}"
admin_users = ["{admin}"]
log_level = "WARNING"

[spawner]
backend = "stand-in"
concurrent_spawn_limit = {limit}
poll_interval = 3600

[proxy]
backend = "none"
check_interval = 3600
"""


class Hubkit(HubProcess):
    label = "hubkit"
    log_name = "hubkit.log"

    def prepare(self) -> None:
        # the core's own plugins only, as `pip install hubkit-core` gives (the test venv also holds the example
        # plugin and the other packages, whose hooks would run on every spawn)
        self.env["HUBKIT_PLUGINS"] = ""
        self.db_url = self.db.hubkit_url(self.data)
        self.config = self.data / "hubkit.toml"
        self.config.write_text(
            HUBKIT_TOML.format(
                port=self.port, data=self.data, db_url=self.db_url, admin=ADMIN, limit=self.spawn_limit
            )
        )
        hubkit = str(BIN / "hubkit")
        if self.db.kind != "sqlite":
            self._run([hubkit, "-f", str(self.config), "db", "upgrade"])
        self.token = self._run([hubkit, "-f", str(self.config), "token", ADMIN, "--create"]).strip().splitlines()[-1]

    def command(self) -> list[str]:
        return [str(BIN / "hubkit"), "-f", str(self.config)]

    def bulk_users(self, names: list[str]) -> None:
        """Rows as ``POST /users`` makes them, inserted in one statement per 2,000 (the API is timed separately)."""
        from hubkit.storage.orm import User
        from sqlalchemy import create_engine, insert
        from sqlalchemy.engine import make_url

        url = make_url(self.db_url)
        if url.drivername.startswith("postgresql"):
            url = url.set(drivername="postgresql+psycopg2")
        engine = create_engine(url)
        with engine.begin() as conn:
            for i in range(0, len(names), 2000):
                conn.execute(
                    insert(User),
                    [
                        {"name": n, "admin": False, "cookie_id": secrets.token_hex(16), "spawn_failures": 0}
                        for n in names[i : i + 2000]
                    ],
                )
        engine.dispose()


class HubkitWorkers(Hubkit):
    """``hubkit -f hubkit.toml --workers N``: the supervisor and N replicas on one PostgreSQL database, all
    accepting on the hub's one port; started when every worker has answered a request."""

    def __init__(self, data: Path, db: Database, *, workers: int, spawn_limit: int = 100) -> None:
        if db.kind != "postgres":
            raise ValueError("hubkit --workers needs PostgreSQL")
        super().__init__(data, db, spawn_limit=spawn_limit)
        self.workers = workers
        self.label = f"hubkit --workers {workers}"

    def command(self) -> list[str]:
        return [*super().command(), "--workers", str(self.workers)]

    def processes(self) -> list[int]:
        return process_tree(self.pid)

    def worker_pids(self) -> set[int]:
        return set(self.processes()) - {self.pid}

    def start(self) -> None:
        super().start()  # worker 0 answers; the supervisor starts the others after it
        deadline = time.monotonic() + 120
        answered: set[int] = set()
        with httpx.Client(headers={"Authorization": f"token {self.token}"}, timeout=10) as c:
            while time.monotonic() < deadline:
                workers = self.worker_pids()
                if len(workers) == self.workers and workers <= answered:
                    return
                # a new connection per request, so that any worker accepting on the port may take it
                r = c.get(f"{self.url}/hub/api/info", headers={"Connection": "close"})
                if r.status_code == 200:
                    answered.add(int(str(r.json()["replica"]).rsplit(":", 1)[1]))
                if self.proc is not None and self.proc.poll() is not None:
                    break
        raise RuntimeError(
            f"{self.label}: {len(answered & self.worker_pids())} of {self.workers} workers answered within 120 s: "
            f"{(self.data / self.log_name).read_text()[-3000:]}"
        )


class JupyterHub(HubProcess):
    label = "JupyterHub 6.1.1"
    log_name = "jupyterhub.log"

    def prepare(self) -> None:
        self.db_url = self.db.jupyterhub_url(self.data)
        self.env = {
            "BENCH_JH_PORT": str(self.port),
            "BENCH_JH_PUBLIC_PORT": str(free_port()),
            "BENCH_JH_DB": self.db_url,
            "BENCH_JH_DATA": str(self.data),
            "BENCH_JH_ADMIN": ADMIN,
            "BENCH_JH_SPAWN_LIMIT": str(self.spawn_limit),
        }
        self.token = self._run(
            [str(BIN / "jupyterhub"), "token", ADMIN, "-f", str(HERE / "jh_bench_config.py")]
        ).strip().splitlines()[-1]

    def command(self) -> list[str]:
        return [str(BIN / "jupyterhub"), "-f", str(HERE / "jh_bench_config.py")]

    def bulk_users(self, names: list[str]) -> None:
        """JupyterHub's own ORM, each user with its default ``user`` role as its API would give them."""
        from jupyterhub import orm

        db = orm.new_session_factory(self.db_url)()
        role = db.query(orm.Role).filter_by(name="user").one()
        for i in range(0, len(names), 2000):
            users = [orm.User(name=n) for n in names[i : i + 2000]]
            db.add_all(users)
            db.flush()
            db.execute(
                orm.Base.metadata.tables["user_role_map"].insert(),
                [{"user_id": u.id, "role_id": role.id} for u in users],
            )
        db.commit()
        db.close()
