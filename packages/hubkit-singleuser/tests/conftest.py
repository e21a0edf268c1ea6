from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parent))  # unique module names; never shadow others
from fakehub import FakeHub
from su_harness import Server, launch, shutdown


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fakehub() -> Iterator[FakeHub]:
    hub = FakeHub()
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture
def server(fakehub: FakeHub, tmp_path: Path) -> Iterator[Server]:
    s = launch(fakehub, tmp_path, interval="0.5")
    yield s
    shutdown(s)
