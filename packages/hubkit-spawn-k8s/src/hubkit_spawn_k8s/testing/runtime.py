"""Container runtimes for the fake kubelet.

There are no network namespaces here, so each pod gets its own loopback address (127.100.x.y) and the
kubelet emulates "listen on every interface of the pod" by replacing the wildcard ``0.0.0.0`` in the
container's env and args with that address. The server then really listens on ``podIP:containerPort``.

* ``process``: run the container's command (or the image's entrypoint) as a local process with the pod's env.
* ``http``: a tiny in-process HTTP server answering 200 on every path (cheap enough for 500 pods).
* ``oom``: runs briefly then "is killed" with reason ``OOMKilled`` (exit 137), as the kernel would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FakeImage:
    """An image the fake registry knows. Unknown images fail to pull."""

    name: str
    runtime: str = "process"  # process | http | oom
    entrypoint: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    run_seconds: float = 0.2  # how long an ``oom`` container lives


@dataclass
class Exit:
    code: int
    reason: str  # Completed | Error | OOMKilled


class Container:
    """One running container; ``wait()`` returns how it ended."""

    def __init__(self) -> None:
        self.logs: deque[str] = deque(maxlen=2000)
        self.done: asyncio.Future[Exit] = asyncio.get_running_loop().create_future()

    async def wait(self) -> Exit:
        return await asyncio.shield(self.done)

    def _finish(self, code: int, reason: str) -> None:
        if not self.done.done():
            self.done.set_result(Exit(code, reason))

    async def terminate(self, grace: float) -> None:
        self._finish(143 if grace else 137, "Error")


class ProcessContainer(Container):
    async def start(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.logs.append(raw.decode(errors="replace").rstrip("\n"))
        code = await self.proc.wait()
        self._finish(code if code >= 0 else 128 - code, "Completed" if code == 0 else "Error")

    async def terminate(self, grace: float) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM if grace else signal.SIGKILL)
            try:
                await asyncio.wait_for(self.wait(), max(grace, 0.1))
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wait(), 5)


class HttpContainer(Container):
    async def start(self, ip: str, port: int) -> None:
        self.server = await asyncio.start_server(self._serve, ip, port)
        self.logs.append(f"tiny server listening on http://{ip}:{port}/")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            line = request.split(b"\r\n", 1)[0].decode(errors="replace")
            body = b'{"version": "fake-singleuser"}'
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            self.logs.append(line)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def terminate(self, grace: float) -> None:
        self.server.close()
        self._finish(0 if grace else 137, "Completed" if grace else "Error")


class OomContainer(Container):
    async def start(self, run_seconds: float, limit: str) -> None:
        self.logs.append(f"allocating memory beyond the limit ({limit or 'none'})")
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(run_seconds, self._finish, 137, "OOMKilled")

    async def terminate(self, grace: float) -> None:
        self._timer.cancel()
        await super().terminate(grace)


def container_env(container: dict[str, Any], image: FakeImage, pod_ip: str, home: str) -> dict[str, str]:
    bin_dir = os.path.dirname(sys.executable)
    env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8"}
    env.update(image.env)
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif (var.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == "status.podIP":
            env[var["name"]] = pod_ip
    return {k: v.replace("0.0.0.0", pod_ip) for k, v in env.items()}
