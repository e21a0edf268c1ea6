"""Ports for user servers: one the kernel picks (the default), or one from the operator's ``port_range``.

A port from the range is bind-tested the way Jupyter Server binds (``SO_REUSEADDR``, so a port left in
TIME_WAIT by a stopped server is reusable, while one any program listens on or holds a connection from is
not) and is never one that a server of this hub holds or is about to bind.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable, Iterator


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def bindable(port: int, host: str = "127.0.0.1") -> bool:
    """Could a server bind ``host:port`` right now?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class PortRange:
    """An inclusive ``[low, high]`` range; candidates start at a random offset so hubs sharing a range (or a
    hub restarted right after a crash) rarely reach for the same port at once."""

    def __init__(self, low: int, high: int, host: str = "127.0.0.1") -> None:
        self.low = low
        self.high = high
        self.host = host

    def __len__(self) -> int:
        return self.high - self.low + 1

    def __str__(self) -> str:
        return f"[{self.low}, {self.high}]"

    def candidates(self) -> Iterator[int]:
        size = len(self)
        start = random.randrange(size)
        for i in range(size):
            yield self.low + (start + i) % size

    def pick(self, taken: Iterable[int]) -> int | None:
        """A port in the range that is not ``taken`` and passes the bind test; ``None`` when there is none."""
        skip = set(taken)
        for port in self.candidates():
            if port not in skip and bindable(port, self.host):
                return port
        return None
