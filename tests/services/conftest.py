from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hubkit.testing import require

sys.path.append(str(Path(__file__).parent))  # unique module names; never shadow others
from svchub import BIN, ServicesHub


@pytest.fixture
def make_hub(tmp_path: Path) -> Iterator[Callable[[str], ServicesHub]]:
    require(shutil.which("hubkit", path=str(BIN)) is not None, "the hubkit CLI is not installed")
    hubs: list[ServicesHub] = []

    def make(services_toml: str, name: str = "hub") -> ServicesHub:
        hub = ServicesHub(tmp_path / f"{name}{len(hubs)}", services_toml)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.cleanup()
