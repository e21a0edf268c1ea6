"""Which targets of a several-target route may get requests (e.g. the default route naming several hubs).

Passive: a target that refuses or times out a connection is marked down for ``fail_timeout`` and the request
moves to the next target. Active: every ``interval`` each target of a several-target route is probed (TCP
connect, plus ``GET <path>`` answered below 500 when a path is set); a failed probe marks it down, a good one
marks it up again. Single-target routes are never marked: there is nowhere else to go.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .routing import Route, Target

if TYPE_CHECKING:
    from .server import Proxy

log = logging.getLogger("hubkit_proxy.health")


class Health:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.down_until: dict[str, float] = {}  # target URL -> monotonic time it may be tried again

    def is_up(self, target: Target) -> bool:
        until = self.down_until.get(target.url)
        return until is None or until <= time.monotonic()

    def mark_down(self, target: Target, why: str) -> None:
        if self.is_up(target):
            log.warning("target %s is down (%s)", target.url, why)
        self.down_until[target.url] = time.monotonic() + self.proxy.settings.fail_timeout

    def mark_up(self, target: Target) -> None:
        if self.down_until.pop(target.url, None) is not None:
            log.info("target %s is up again", target.url)

    def order(self, route: Route) -> list[Target]:
        """Targets to try for a new connection: healthy ones in round-robin order, then the rest (a route whose
        targets all look down still tries them rather than answering 503 at once)."""
        targets = route.targets
        if len(targets) == 1:
            return targets
        start = route.rr % len(targets)
        route.rr += 1
        turn = targets[start:] + targets[:start]
        up = [t for t in turn if self.is_up(t)]
        return up + [t for t in turn if t not in up]

    async def run(self) -> None:
        """Probe every target of every several-target route, every ``health_check_interval`` seconds."""
        interval = self.proxy.settings.health_check_interval
        while True:
            await asyncio.sleep(interval)
            targets = {t.url: t for r in list(self.proxy.routes.multi.values()) for t in r.targets}
            if not targets:
                continue
            results = await asyncio.gather(*(self.probe(t) for t in targets.values()))
            for target, problem in zip(targets.values(), results, strict=True):
                if problem is None:
                    self.mark_up(target)
                else:
                    self.mark_down(target, problem)

    async def probe(self, target: Target) -> str | None:
        """None when healthy, else what went wrong."""
        s = self.proxy.settings
        try:
            return await asyncio.wait_for(self._probe(target, s.health_check_path), s.health_check_timeout)
        except TimeoutError:
            return f"no answer within {s.health_check_timeout}s"
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"

    async def _probe(self, target: Target, path: str) -> str | None:
        if target.unix_path is not None:
            reader, writer = await asyncio.open_unix_connection(target.unix_path)
        else:
            ssl_ctx = None
            if target.ssl:
                from .upstream import client_ssl_context

                ssl_ctx = client_ssl_context()
            reader, writer = await asyncio.open_connection(target.host, target.port, ssl=ssl_ctx)
        try:
            if not path:
                return None  # accepting connections is enough
            host = f"{target.host}:{target.port}" if target.unix_path is None else "localhost"
            writer.write(
                f"GET {target.base_path}{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            line = await reader.readline()
            parts = line.split()
            if len(parts) < 2 or not parts[1].isdigit():
                return f"bad answer {line[:40]!r}"
            status = int(parts[1])
            return None if status < 500 else f"status {status}"
        finally:
            writer.close()
