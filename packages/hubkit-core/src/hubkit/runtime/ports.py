"""Port 0 for the hub's own listener, so nothing has to guess a free port for it (tests run beside other programs).

The socket is bound before the hub is built, so every URL the hub hands out (the proxy's default target, the
servers' JUPYTERHUB_API_URL) carries the real port; once serving, the port is reported in
``<data_dir>/hub.ports.json`` for whoever started the hub.

A restarted hub (``kill -9`` and a supervisor, a crash, an upgrade) comes back on the port its last run reported
when that port is free: the servers it re-adopts were given ``JUPYTERHUB_API_URL`` with that port, and they keep
asking it whether a browser's token is good. Only when another program holds it does the hub take a new one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from ..errors import ConfigError

PORTS_FILE = "hub.ports.json"
log = logging.getLogger("hubkit")


def own_port_key(settings: Any) -> str:
    return "port" if settings.proxy.backend == "none" else "hub_port"


def require_real_port(settings: Any, server: str) -> None:
    """Under another program's server (ASGI, WSGI) the hub cannot bind port 0 itself, and its URLs (the proxy's
    default route, the servers' JUPYTERHUB_API_URL) would name port 0: refuse, saying what to write instead."""
    key = own_port_key(settings)
    if getattr(settings.hub, key) == 0:
        raise ConfigError(
            f"[hub] {key} = 0 works only with the hubkit command (it binds the port and reports it); under "
            f"{server}, set [hub] {key} to the port the server listens on"
        )


def bind_port_zero(settings: Any) -> tuple[Any, socket.socket | None]:
    """With ``port = 0`` (no proxy) or ``hub_port = 0``: a bound socket and settings carrying its real port."""
    h = settings.hub
    key = own_port_key(settings)
    if getattr(h, key) != 0:
        return settings, None
    host = (h.ip if key == "port" else h.hub_ip) or "0.0.0.0"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    last = last_port(settings)
    try:
        sock.bind((host, last))
    except OSError as exc:
        if last == 0:
            sock.close()
            raise
        log.warning(
            "port %s of the hub's last run is taken (%s): a new one; servers started before cannot reach the hub",
            last,
            exc.strerror,
        )
        sock.bind((host, 0))
    bound = {key: int(sock.getsockname()[1])}
    return settings.model_copy(update={"hub": h.model_copy(update=bound)}), sock


def last_port(settings: Any) -> int:
    """The port the hub's last run reported (0 if none)."""
    path = Path(settings.hub.data_dir) / PORTS_FILE
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        port = json.loads(path.read_text()).get(own_port_key(settings))
        if isinstance(port, int) and 0 < port < 65536:
            return port
    return 0


def report_port(settings: Any, sock: socket.socket) -> None:
    """Write ``{"pid", "port"|"hub_port"}`` atomically into the data dir."""
    key = own_port_key(settings)
    path = Path(settings.hub.data_dir) / PORTS_FILE
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), key: int(sock.getsockname()[1])}))
    os.replace(tmp, path)
