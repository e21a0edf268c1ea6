from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.append(str(Path(__file__).parent))  # unique module names; never shadow others
from hardhub import HardHub


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HardHub]:
    """One real hub per module and database: the hub process behind hubkit-proxy."""
    tmp = tmp_path_factory.mktemp(f"hard-{request.param}")
    if request.param == "sqlite":
        url = "sqlite:///hub.sqlite"
    else:
        cluster: Any = request.getfixturevalue("postgres_cluster")
        url = str(cluster.url(cluster.create_database()))
    h = HardHub(tmp, url).start()
    yield h
    h.stop()


@pytest.fixture(scope="module")
def boss(hub: HardHub) -> str:
    """An admin's API token (minted by the CLI, which is the one place exempt from the caller cap)."""
    return hub.token("boss")
