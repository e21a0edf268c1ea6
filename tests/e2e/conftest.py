from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from hubproc import Hub

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _require(cond: bool, reason: str) -> None:
    if cond:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required component missing in CI: {reason}")
    pytest.skip(reason)


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


def login(page: Any, hub: Hub, name: str, path: str = "/hub/home") -> None:
    page.goto(hub.url + path)
    page.fill("#username", name)
    page.click("#login-submit")
    page.wait_for_load_state()
