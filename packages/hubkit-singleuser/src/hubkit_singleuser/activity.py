"""Activity reports to the hub: the JupyterHub body plus hubkit's richer per-server facts
(docs/singleuser.md, "Activity reports").

``servers[name].hubkit`` = ``{"kernels", "kernels_busy", "connections", "terminals", "last_busy"}`` lets the
hub's culler spare a server whose kernel is computing and stop one whose tab is merely left open.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime
from typing import Any

from .hubclient import HubClient
from .hubenv import HubEnv

log = logging.getLogger("hubkit_singleuser.activity")
RETRY_FIRST = 1.0
RETRY_MAX_TOTAL = 60.0


def isoformat(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def kernel_facts(serverapp: Any) -> dict[str, Any]:
    """Counts from jupyter_server's kernel and terminal managers (no hub involved)."""
    km = serverapp.kernel_manager
    kernels = busy = 0
    last_busy: datetime | None = None
    now = datetime.now(UTC)
    for kid in list(km.list_kernel_ids()):
        try:
            k = km.get_kernel(kid)
        except KeyError:
            continue
        kernels += 1
        st = getattr(k, "execution_state", "")
        if st == "busy":
            busy += 1
            last_busy = now
        else:
            # an idle kernel's last_activity is when its last message (usually "idle") arrived
            la = getattr(k, "last_activity", None)
            if st == "idle" and isinstance(la, datetime) and (last_busy is None or la > last_busy):
                last_busy = la
    connections = sum(int(v) for v in getattr(km, "_kernel_connections", {}).values())
    tm = serverapp.web_app.settings.get("terminal_manager")
    terminals = len(getattr(tm, "terminals", {}) or {}) if tm is not None else 0
    facts: dict[str, Any] = {
        "kernels": kernels,
        "kernels_busy": busy,
        "connections": connections,
        "terminals": terminals,
    }
    if last_busy is not None:  # omitted (not null) until a kernel has been busy: the hub wants a timestamp
        facts["last_busy"] = isoformat(last_busy)
    return facts


def activity_body(serverapp: Any, server_name: str) -> dict[str, Any]:
    last = isoformat(serverapp.web_app.last_activity())
    return {
        "servers": {server_name: {"last_activity": last, "hubkit": kernel_facts(serverapp)}},
        "last_activity": last,
    }


class ActivityReporter:
    def __init__(self, serverapp: Any, env: HubEnv, client: HubClient) -> None:
        self.serverapp = serverapp
        self.env = env
        self.client = client
        self.task: asyncio.Task[None] | None = None

    async def report_once(self) -> bool:
        """One post, retried with backoff for up to a minute; a hub that is down never stops the server."""
        delay = RETRY_FIRST
        waited = 0.0
        while True:
            code = await self.client.post_activity(activity_body(self.serverapp, self.env.server_name))
            if 200 <= code < 300:
                return True
            if waited + delay > min(RETRY_MAX_TOTAL, self.env.activity_interval):
                log.error("activity report to %s failed (status %s)", self.env.activity_url, code)
                return False
            await asyncio.sleep(delay)
            waited += delay
            delay *= 2

    async def run(self) -> None:
        while True:
            await self.report_once()
            await asyncio.sleep(self.env.activity_interval * random.uniform(0.9, 1.1))

    def start(self) -> None:
        if self.env.activity_url and self.task is None:
            self.task = asyncio.get_event_loop().create_task(self.run())
