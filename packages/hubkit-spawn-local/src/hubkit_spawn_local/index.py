"""A per-hub index of the processes this backend started, so orphans can be found after a crash.

The hub's database is the source of truth for *known* servers; this file only remembers what was started
(written before and right after each start), which is what an orphan sweep needs.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


class ProcessIndex:
    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> dict[str, dict[str, Any]]:
        try:
            with open(self.path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # A torn or hand-edited file must not stop spawning; the DB still knows the servers.
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict[str, dict[str, Any]]) -> None:
        d = os.path.dirname(self.path)
        os.makedirs(d, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".index-", dir=d)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def put(self, key: str, state: dict[str, Any]) -> None:
        data = self.load()
        data[key] = state
        self._save(data)

    def remove(self, key: str) -> None:
        data = self.load()
        if data.pop(key, None) is not None:
            self._save(data)
