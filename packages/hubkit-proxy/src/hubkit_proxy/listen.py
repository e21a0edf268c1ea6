"""Listening sockets: port 0 (the kernel picks) reported back through a ports file, and SO_REUSEPORT groups.

Port 0 is how tests and embedders avoid racing other programs for a "free" port: the proxy binds, then writes
the ports it got to ``--ports-file`` (JSON, replaced atomically), which the launcher waits for.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Callable
from typing import Any


def listen_host(ip: str) -> str | None:
    """CHP's '' and '*' mean every interface."""
    return None if ip in ("", "*") else ip


def _sockets(server: asyncio.AbstractServer) -> list[socket.socket]:
    return list(getattr(server, "sockets", None) or [])  # asyncio.Server and uvloop's Server both have it


def bound_port(server: asyncio.AbstractServer) -> int:
    return int(_sockets(server)[0].getsockname()[1])


async def create_listener(
    factory: Callable[[], asyncio.BaseProtocol],
    ip: str,
    port: int,
    *,
    reuse_port: bool = False,
    attempts: int = 5,
    **kw: Any,
) -> asyncio.AbstractServer:
    """``loop.create_server`` where port 0 gives one port for every address family of ``ip``.

    With no host the loop binds IPv4 and IPv6 separately, and port 0 would give each its own port; then the
    first family's port is taken for the others (retried if that port is busy on the other family).
    """
    loop = asyncio.get_running_loop()
    host = listen_host(ip)
    for attempt in range(attempts):
        server = await loop.create_server(
            factory, host, port, reuse_address=True, reuse_port=reuse_port or None, **kw
        )
        ports = {int(s.getsockname()[1]) for s in _sockets(server)}
        if port != 0 or len(ports) <= 1:
            return server
        first = bound_port(server)
        server.close()
        try:
            return await loop.create_server(
                factory, host, first, reuse_address=True, reuse_port=reuse_port or None, **kw
            )
        except OSError:
            if attempt == attempts - 1:
                raise
    raise OSError("could not bind one port on every address family")  # pragma: no cover


def reserve_ports(ip: str, port: int) -> tuple[int, list[socket.socket]]:
    """Bind (without listening) SO_REUSEPORT sockets on every address of ``ip``: fixes port 0 to one real port
    for a group of workers. A socket that does not listen gets no connections, so the kernel spreads them over
    the workers only, and the port stays ours while workers come and go."""
    host = listen_host(ip)
    infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    held: list[socket.socket] = []
    try:
        for family, type_, proto, _, addr in infos:
            sock = socket.socket(family, type_, proto)
            held.append(sock)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((addr[0], port, *addr[2:]))
            port = int(sock.getsockname()[1])  # the first family's port 0 becomes everyone's port
    except OSError:
        for sock in held:
            sock.close()
        raise
    return port, held


def write_ports_file(path: str, ports: dict[str, int | None]) -> None:
    """Atomically write ``{"pid": ..., "port": ..., "api_port": ..., ...}`` (readers never see half a file)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(tmp, "w") as fh:
        json.dump({"pid": os.getpid(), **ports}, fh)
    os.replace(tmp, path)


def read_ports_file(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
