from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.append(str(Path(__file__).parent))  # unique module names; never shadow others
from hardhub import HardHub
from probehub import kill_servers


def _db_url(request: pytest.FixtureRequest, kind: str) -> str:
    if kind == "sqlite":
        return "sqlite:///hub.sqlite"
    cluster: Any = request.getfixturevalue("postgres_cluster")
    return str(cluster.url(cluster.create_database()))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HardHub]:
    """One real hub per module and database: the hub process behind hubkit-proxy."""
    tmp = tmp_path_factory.mktemp(f"hard-{request.param}")
    h = HardHub(tmp, _db_url(request, request.param)).start()
    yield h
    h.stop()


@pytest.fixture(scope="module")
def boss(hub: HardHub) -> str:
    """An admin's API token (minted by the CLI, which is the one place exempt from the caller cap)."""
    return hub.token("boss")


@pytest.fixture(scope="module")
def sqlite_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HardHub]:
    """One real hub per module on SQLite, for checks that do not depend on the database."""
    h = HardHub(tmp_path_factory.mktemp("hard-sqlite-only"), "sqlite:///hub.sqlite").start()
    yield h
    h.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def process_hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HardHub]:
    """A real hub per module and database whose test spawner runs each server as a child process (so a
    server's credentials exist where a real server's would: in its environment)."""
    tmp = tmp_path_factory.mktemp(f"hard-proc-{request.param}")
    extra = 'allow_named_servers = true\n\n[spawner.test]\nmode = "process"\n'
    h = HardHub(tmp, _db_url(request, request.param), extra=extra).start()
    yield h
    h.stop()
    kill_servers(h)
