"""JupyterHub 6.1.1 for the hub-side benchmarks and the guard (settings from ``BENCH_JH_*`` environment variables).

One process, requests straight to its hub port, a proxy class that does nothing, and an in-hub listener
spawner: each "server" is an asyncio listener inside the hub process that answers every request with 200. It
is the counterpart of hubkit's ``stand-in`` spawner in its default in-process mode, so a spawn wave measures
each hub's own work (API, database, credentials, readiness check, route call) and no Jupyter. JupyterHub ships
no such spawner; this one is ours, written for the benchmark.
"""

import asyncio
import os

from jupyterhub.proxy import Proxy
from jupyterhub.spawner import Spawner

BODY = b'{"version": "bench"}'


class NoProxy(Proxy):
    should_start = False

    async def add_route(self, routespec, target, data):
        return None

    async def delete_route(self, routespec):
        return None

    async def get_all_routes(self):
        return {}


async def _answer(reader, writer):
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "
            + str(len(BODY)).encode()
            + b"\r\n\r\n"
            + BODY
        )
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


class ListenerSpawner(Spawner):
    _listener = None

    async def start(self):
        self._listener = await asyncio.start_server(_answer, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._listener.sockets[0].getsockname()[1]}"

    async def poll(self):
        return None if self._listener is not None and self._listener.is_serving() else 0

    async def stop(self, now=False):
        if self._listener is not None:
            self._listener.close()
            self._listener = None


c = get_config()  # type: ignore[name-defined]  # noqa: F821
data = os.environ["BENCH_JH_DATA"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ["BENCH_JH_PORT"])
c.JupyterHub.port = int(os.environ["BENCH_JH_PUBLIC_PORT"])
c.JupyterHub.db_url = os.environ["BENCH_JH_DB"]
c.JupyterHub.cookie_secret_file = os.path.join(data, "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = os.path.join(data, "jupyterhub.pid")
c.JupyterHub.proxy_class = NoProxy
c.JupyterHub.spawner_class = ListenerSpawner
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.concurrent_spawn_limit = int(os.environ.get("BENCH_JH_SPAWN_LIMIT", "100"))
c.JupyterHub.cleanup_servers = True
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {os.environ["BENCH_JH_ADMIN"]}
c.JupyterHub.log_level = "WARN"
