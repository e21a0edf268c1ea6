"""hubkit spawner backend ``kubernetes``: one pod per user server, driven by shared watches."""

from __future__ import annotations

__version__ = "0.1.0"
