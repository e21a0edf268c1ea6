"""Browser tests drive the same live hub as the compatibility tests (real sockets, hubkit-proxy in front)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "hubkit_live_hub", Path(__file__).parent.parent / "compat" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_mod = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _mod
_spec.loader.exec_module(_mod)
live_hub_factory = _mod.live_hub_factory
anyio_backend = _mod.anyio_backend
