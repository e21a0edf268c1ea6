"""JupyterHub 6.1.1 for the API benchmark: dummy authenticator, a spawner and proxy that do nothing
(the benchmark never spawns and talks to the hub's own port), and a service token with the scopes it needs."""

import os

from jupyterhub.proxy import Proxy
from jupyterhub.spawner import Spawner


class NoProxy(Proxy):
    should_start = False

    async def add_route(self, routespec, target, data):
        return None

    async def delete_route(self, routespec):
        return None

    async def get_all_routes(self):
        return {}


class NoSpawner(Spawner):
    async def start(self):
        raise RuntimeError("the benchmark does not spawn")

    async def stop(self, now=False):
        return None

    async def poll(self):
        return 0


c = get_config()  # type: ignore[name-defined]  # noqa: F821
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ["BENCH_JH_PORT"])
c.JupyterHub.port = int(os.environ["BENCH_JH_PUBLIC_PORT"])
c.JupyterHub.db_url = os.environ["BENCH_JH_DB"]
c.JupyterHub.cookie_secret_file = os.environ["BENCH_JH_SECRET"]
c.JupyterHub.proxy_class = NoProxy
c.JupyterHub.spawner_class = NoSpawner
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.log_level = "WARN"
c.JupyterHub.services = [{"name": "bench", "api_token": os.environ["BENCH_TOKEN"]}]
c.JupyterHub.load_roles = [
    {
        "name": "bench",
        "scopes": ["admin:users", "list:users", "read:users", "admin:servers"],
        "services": ["bench"],
    }
]
