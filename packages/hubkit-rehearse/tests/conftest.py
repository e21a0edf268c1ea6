"""Fixtures: real hubs on 127.0.0.1 (see rehearse_helpers.py). Hubs are module-scoped where the tests of a
module only add and remove their own users, so each kind of hub starts once per module."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # rehearse_helpers, jh_standin_spawner: unique module names
