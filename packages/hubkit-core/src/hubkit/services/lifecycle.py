"""The hub process's own lifecycle as the services see it: a request to end it (``POST /hub/api/shutdown``), and
what should stop with it. The runner that owns the event loop (:mod:`hubkit.runtime.serve`, the ASGI and WSGI
entry points) waits for the request and ends the process; the hub's normal shutdown then reads the flags."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Lifecycle:
    """Whether this hub process was asked to end, and whether its user servers and proxy go with it.

    Both default to ``False``: user servers and the proxy outlive the hub, which is hubkit's normal shutdown
    (JupyterHub's ``cleanup_servers``/``cleanup_proxy`` set to false)."""

    stop_servers: bool = False
    stop_proxy: bool = False
    _requested: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def request_exit(self, *, stop_servers: bool = False, stop_proxy: bool = False) -> None:
        """Ask the process to end. A second request can widen what stops, never narrow it."""
        self.stop_servers = self.stop_servers or stop_servers
        self.stop_proxy = self.stop_proxy or stop_proxy
        self._requested.set()

    async def wait(self) -> None:
        await self._requested.wait()
