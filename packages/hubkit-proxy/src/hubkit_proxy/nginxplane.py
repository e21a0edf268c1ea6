"""Experimental: nginx as a compiled data plane behind hubkit-proxy's route API (``--nginx-routes``).

The route table, changed through the same CHP API, is rendered into an nginx include (a ``server`` block plus
one ``upstream`` per route) and nginx is told to reload (SIGHUP to the master named by ``--nginx-pid``).
Changes are batched: a burst of route changes costs one reload. hubkit-proxy keeps serving its own port too.

What nginx does not do here: per-route ``last_activity`` (nginx reports none, so the culler sees only traffic
through hubkit-proxy's own port), ``--host-routing``, ``--error-target`` pages, and the journal's meaning is
unchanged (hubkit-proxy keeps it). Routes with several targets become upstreams with ``max_fails`` /
``fail_timeout`` and nginx retries only what ``proxy_next_upstream`` allows (not non-idempotent requests).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import TYPE_CHECKING, Any

from .routing import Route

if TYPE_CHECKING:
    from .server import Proxy

log = logging.getLogger("hubkit_proxy.nginx")
DEBOUNCE = 0.1  # seconds: route changes within this window share one reload

HEAD = """# Rendered by hubkit-proxy from its route table; do not edit (it is replaced on every route change).
map $http_upgrade $hubkit_connection {{ default upgrade; '' ''; }}
"""
SERVER = """server {{
    listen {listen} reuseport backlog=2048;
    proxy_http_version 1.1;
    proxy_set_header Host $http_host;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $hubkit_connection;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Port $server_port;
    set $hubkit_mark "";  # the hub's route sets the mark (render); a client's own X-Hubkit-Forwarded never passes
    proxy_set_header X-Hubkit-Forwarded $hubkit_mark;
    proxy_buffering off;  # streamed as it arrives (progress events, large downloads), in reads of up to 256k
    proxy_buffer_size 256k;
    proxy_buffers 4 256k;
    proxy_busy_buffers_size 256k;
    proxy_request_buffering off;
    proxy_read_timeout 1h;
    proxy_next_upstream error timeout;
    client_max_body_size 0;
    location = /_chp_healthz {{ default_type application/json; return 200 '{{"status":"OK"}}'; }}
{locations}}}
"""


def _quote(path: str) -> str:
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(routes: list[Route], listen: str, fail_timeout: float, hub_mark: str | None = None) -> str:
    """The include for ``routes``: longest prefix on segment boundaries, as hubkit-proxy routes. Requests to
    ``/`` (the hub's route) carry ``hub_mark`` as ``X-Hubkit-Forwarded``; the include then holds a secret and is
    written readable by its owner only."""
    upstreams: list[str] = []
    locations: list[str] = []
    has_root = False
    for n, route in enumerate(sorted(routes, key=lambda r: r.path)):
        name = f"hubkit_r{n}"
        servers = "".join(
            f"    server {t.host}:{t.port} max_fails=1 fail_timeout={max(1, int(fail_timeout))}s;\n"
            for t in route.targets
            if t.unix_path is None and not t.ssl
        )
        if not servers:  # unix sockets and https targets stay on hubkit-proxy's own data plane
            continue
        upstreams.append(f"upstream {name} {{\n{servers}    keepalive 64;\n}}\n")
        base = route.target.base_path
        passing = f"proxy_pass http://{name}{base}$request_uri;" if base else f"proxy_pass http://{name};"
        if route.path == "/":
            has_root = True
            mark = f"set $hubkit_mark {_quote(hub_mark)}; " if hub_mark else ""
            locations.append(f"    location / {{ {mark}{passing} }}\n")
        else:
            locations.append(f"    location = {_quote(route.path)} {{ {passing} }}\n")
            locations.append(f"    location ^~ {_quote(route.path + '/')} {{ {passing} }}\n")
    if not has_root:
        locations.append("    location / { return 404; }\n")
    return HEAD.format() + "".join(upstreams) + SERVER.format(listen=listen, locations="".join(locations))


class NginxPlane:
    """Keeps an nginx include equal to the route table and reloads nginx after changes."""

    def __init__(self, proxy: Proxy, path: str, pid_file: str | None, listen: str) -> None:
        self.proxy = proxy
        self.path = path
        self.pid_file = pid_file
        self.listen = listen
        self.pending: asyncio.TimerHandle | None = None
        self.reloads = 0

    def start(self) -> None:
        self.write()
        self.proxy.routes.listeners.append(self.changed)

    def changed(self, op: str, path: str, data: dict[str, Any] | None) -> None:
        if self.pending is None:
            self.pending = asyncio.get_running_loop().call_later(DEBOUNCE, self.flush)

    def flush(self) -> None:
        self.pending = None
        self.write()
        self.reload()

    def write(self) -> None:
        s = self.proxy.settings
        text = render(list(self.proxy.routes), self.listen, s.fail_timeout, s.hub_mark)
        tmp = f"{self.path}.tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
            fh.write(text)
        os.replace(tmp, self.path)

    def reload(self) -> None:
        if not self.pid_file:
            return
        try:
            with open(self.pid_file) as fh:
                os.kill(int(fh.read().strip()), signal.SIGHUP)
            self.reloads += 1
        except (OSError, ValueError) as exc:
            log.warning("could not reload nginx (%s): %s", self.pid_file, exc)
