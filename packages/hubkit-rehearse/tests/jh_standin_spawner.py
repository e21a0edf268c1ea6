"""A STAND-IN spawner for JupyterHub, for tests and the rehearse benchmark only.

Each "server" is an asyncio listener inside the hub process that answers every request with 200 and
``{"version": "stand-in"}``, after ``start_delay`` seconds of pretend start-up. It is JupyterHub's
counterpart of hubkit's built-in ``test`` spawner (in-process mode), so that both hubs' control planes (login,
spawn admission, progress, proxy routes, stop) can be rehearsed with hundreds of users on two cores, where
hundreds of real JupyterLab processes would not fit. JupyterHub ships no such spawner; this one is ours.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jupyterhub.spawner import Spawner
from traitlets import Float

BODY = b'{"version": "stand-in"}'


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
        )
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


class InHubSpawner(Spawner):  # type: ignore[misc]
    start_delay = Float(0.0, help="seconds start() takes before the listener opens").tag(config=True)

    _listener: asyncio.Server | None = None

    async def start(self) -> str:
        if self.start_delay:
            await asyncio.sleep(self.start_delay)
        self._listener = await asyncio.start_server(_answer, "127.0.0.1", 0)
        port = int(self._listener.sockets[0].getsockname()[1])
        return f"http://127.0.0.1:{port}"

    async def poll(self) -> int | None:
        if self._listener is not None and self._listener.is_serving():
            return None
        return 0

    async def stop(self, now: bool = False) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def get_state(self) -> dict[str, Any]:
        return dict(super().get_state())

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
