"""URL behaviour tests run the same real hub as tests/e2e (``hubkit -f`` with the demo config: hubkit-proxy,
the local spawner, real JupyterLab servers) and drive it with headless Chromium: its fixtures are reused."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

_spec = importlib.util.spec_from_file_location(
    "hubkit_urls_e2e_conftest", Path(__file__).parent.parent / "e2e" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_mod = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _mod
_spec.loader.exec_module(_mod)
make_hub = _mod.make_hub
browser = _mod.browser


@pytest.fixture
def e2e_hub() -> Any:
    """The module behind ``make_hub`` (its ``Hub`` class, ``to_toml``...)."""
    return sys.modules["e2e_hub"]
