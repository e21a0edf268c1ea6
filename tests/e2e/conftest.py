from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.append(str(Path(__file__).parent))  # unique module names; never shadow others
from e2e_hub import CHROMIUM, CHROMIUM_ARGS, Hub, _require


@pytest.fixture
def make_hub(tmp_path: Path) -> Iterator[Any]:
    _require(
        shutil.which("hubkit", path=os.path.dirname(sys.executable)) is not None, "hubkit CLI not installed"
    )
    hubs: list[Hub] = []

    def make(overrides: dict[str, Any] | None = None, name: str = "hub") -> Hub:
        hub = Hub(tmp_path / f"{name}{len(hubs)}", overrides)
        hubs.append(hub)
        return hub

    yield make
    for h in hubs:
        h.cleanup()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _require(os.path.exists(CHROMIUM), "chromium not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "playwright not installed")
        raise
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
