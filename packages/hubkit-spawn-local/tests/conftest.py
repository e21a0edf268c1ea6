from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hubkit.interfaces import JSONDict, ServerSpec

from hubkit_spawn_local import LocalSpawner, LocalSpawnerConfig

sys.path.append(str(Path(__file__).parent))  # unique module names; never shadow others
from local_harness import hub_info


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_spawner(tmp_path: Path) -> Iterator[Any]:
    made: list[tuple[LocalSpawner, list[tuple[ServerSpec, JSONDict]]]] = []

    def make(**cfg: Any) -> LocalSpawner:
        cfg.setdefault("home_dir", str(tmp_path / "home-{username}"))
        sp = LocalSpawner(config=LocalSpawnerConfig(**cfg), hub=hub_info(tmp_path))
        made.append((sp, []))
        return sp

    yield make
    # never leave a server behind, whatever the test did
    for sp, _ in made:
        for st in sp.index.load().values():
            pg = st.get("pgid")
            if isinstance(pg, int) and pg > 1:
                try:
                    os.killpg(pg, 9)
                except ProcessLookupError:
                    pass


@pytest.fixture
def os_user() -> Iterator[str]:
    """A real, temporary OS account (needs root and useradd)."""
    from hubkit.testing import require

    require(os.geteuid() == 0 and shutil.which("useradd") is not None, "needs root and useradd")
    name = "hkt" + secrets.token_hex(3)
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True)
    yield name
    subprocess.run(["userdel", "-r", name], check=False, capture_output=True)
