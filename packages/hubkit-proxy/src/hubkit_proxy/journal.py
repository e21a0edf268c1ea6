"""Route persistence: an append-only journal of route changes, replayed and compacted at start.

Appending one short line per change keeps adding 10,000 routes linear (a full snapshot per change would be
quadratic), and a proxy killed with SIGKILL loses at most the line being written: replay skips a torn tail.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from .routing import RouteError, RouteTable, parse_iso

log = logging.getLogger("hubkit_proxy.journal")


class Journal:
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None
        self.ops = 0
        self.table: RouteTable | None = None

    def load(self, table: RouteTable) -> int:
        """Replay the journal into ``table`` (without re-journaling), then compact. Returns the route count."""
        self.table = table
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    try:
                        entry = json.loads(line)
                        if "r" in entry:
                            table.remove(entry["r"], notify=False)
                        else:
                            data = entry["d"]
                            seen = data.get("last_activity")
                            table.add(entry["a"], data, parse_iso(seen) if seen else None, notify=False)
                    except (ValueError, KeyError, TypeError, RouteError) as exc:
                        log.warning("%s:%d: skipping unreadable journal entry (%s)", self.path, n, exc)
        self.compact()
        table.listeners.append(self.record)
        return len(table)

    def record(self, op: str, path: str, data: dict[str, Any] | None) -> None:
        entry = {"a": path, "d": data} if op == "add" else {"r": path}
        self._write((json.dumps(entry, separators=(",", ":")) + "\n").encode())
        self.ops += 1
        if self.table is not None and self.ops > max(1000, 2 * len(self.table)):
            self.compact()

    def compact(self) -> None:
        """Rewrite the journal as one add per live route (with current last_activity), atomically."""
        assert self.table is not None
        tmp = self.path + ".tmp"
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            lines = [f'{{"a": {r.path_json}, "d": {r.json_text()}}}\n' for r in self.table]
            os.write(fd, "".join(lines).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        if self.fd is not None:
            os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.ops = 0

    def _write(self, data: bytes) -> None:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(self.fd, data)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
