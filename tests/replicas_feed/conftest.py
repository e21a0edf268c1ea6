"""Two hub replicas, A and B, on one real PostgreSQL database, shared by this folder's tests (each test makes
users of its own)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hubkit.builtin.standin_servers import labelled_processes

sys.path.append(str(Path(__file__).parent))  # unique module names; never shadow others
from feedhubs import Replica

SERVICE = """
[[services]]
name = "notes"
access_groups = ["readers"]
"""


@pytest.fixture(scope="session")
def cluster(postgres_cluster: Any) -> Any:
    return postgres_cluster


@pytest.fixture(scope="session")
def db(cluster: Any) -> str:
    return str(cluster.create_database())


@pytest.fixture(scope="session")
def replicas(cluster: Any, db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Replica, Replica]]:
    tmp = tmp_path_factory.mktemp("feed")
    a = Replica(tmp, "a", cluster.url(db), SERVICE)
    b = Replica(tmp, "b", cluster.url(db), SERVICE)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        b.stop()
        a.stop()
        for r in (a, b):  # servers outlive hubs: any a failed test left running, by PID
            for pid in labelled_processes(f"hubkit@{(r.dir / 'data').resolve()}").values():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)


@pytest.fixture(scope="session")
def boss(replicas: tuple[Replica, Replica]) -> str:
    return replicas[0].token("boss")
