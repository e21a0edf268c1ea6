"""The stand-in spawner's servers: in-process listeners that answer a control path, and how to find tiny server
processes by the label on their command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

SERVER_MODULE = "hubkit.builtin.tiny_server"
CONTROL = "/.stand-in/"

PROBE_TIMEOUT = 2.0


async def request(port: int, method: str, path: str, hub: str) -> tuple[int, bytes]:
    """One HTTP/1.0 request to 127.0.0.1:port (a probe: no client library needed)."""
    async with asyncio.timeout(PROBE_TIMEOUT):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"{method} {path} HTTP/1.0\r\nX-Stand-In-Hub: {hub}\r\n\r\n".encode())
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.count(b" ") >= 1 else 0
    return status, body


class Listener:
    """One in-process user server: answers its prefix, its identity, and a stop request from its hub."""

    def __init__(self, prefix: str, hub: str) -> None:
        self.prefix = prefix
        self.hub = hub
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def serving(self) -> bool:
        return self.server is not None and self.server.is_serving()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            line, _, headers = request.partition(b"\r\n")
            parts = line.decode("latin-1").split(" ")
            method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("GET", "/")
            status, body = b"404 Not Found", b"not found"
            if path == CONTROL + "identity":
                status, body = b"200 OK", json.dumps({"hub": self.hub, "prefix": self.prefix}).encode()
            elif path == CONTROL + "stop" and method == "POST":
                if f"x-stand-in-hub: {self.hub}".encode() in headers.lower():
                    status, body = b"202 Accepted", b"stopping"
                    self.close()
                else:
                    status, body = b"403 Forbidden", b"not your server"
            elif path.startswith(self.prefix):
                status, body = b"200 OK", b'{"version": "test"}'
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nConnection: close\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


def proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat: tells a reused pid from ours. ``None`` when gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def labelled_processes(hub: str) -> dict[str, int]:
    """``instance -> pid`` of every live tiny server carrying this hub's label on its command line."""
    want = f"--hub={hub}".encode()
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if SERVER_MODULE.encode() not in argv or want not in argv:
            continue
        pid = int(entry.name)
        if proc_start_time(pid) is None:
            continue
        for arg in argv:
            if arg.startswith(b"--instance="):
                found[arg.split(b"=", 1)[1].decode()] = pid
    return found
