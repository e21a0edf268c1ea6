"""The hub itself: what runs it (``/info``), its proxy table (``/proxy``), and ending it (``/shutdown``)."""

from __future__ import annotations

import platform
import sys
from typing import Any

from .. import JUPYTERHUB_COMPAT_VERSION, __version__
from ..auth.identity import Identity
from ..interfaces import Route
from . import access
from .context import ServiceContext


def _class_of(obj: object) -> dict[str, str]:
    cls = type(obj)
    mod = sys.modules.get(cls.__module__.split(".")[0])
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "version": str(getattr(mod, "__version__", "unknown")),
    }


def hub_info(ctx: ServiceContext, caller: Identity) -> dict[str, Any]:
    access.require(caller, ("read:hub",))
    return {
        "version": JUPYTERHUB_COMPAT_VERSION,
        "hubkit_version": __version__,
        "python": platform.python_version(),
        "sys_executable": sys.executable,
        "spawner": _class_of(ctx.spawner),
        "authenticator": _class_of(ctx.authenticator),
        "proxy": _class_of(ctx.proxy),
        "replica": ctx.spawns.sp.owners.instance,  # which hub process answered: <lease key>@<host>:<pid>
    }


async def proxy_table(ctx: ServiceContext, caller: Identity) -> dict[str, Route]:
    access.require(caller, ("proxy",))
    return await ctx.proxy.get_routes()


async def reconcile_routes(ctx: ServiceContext, caller: Identity) -> None:
    """Make the proxy's table match the running servers now (JupyterHub's ``POST /proxy``)."""
    access.require(caller, ("proxy",))
    await ctx.routes.reconcile()


def check_shutdown(caller: Identity) -> None:
    access.require(caller, ("shutdown",))


def request_shutdown(ctx: ServiceContext, *, servers: bool, proxy: bool) -> None:
    """End this hub process (JupyterHub's ``POST /shutdown``): its runner stops serving and the hub shuts down
    as usual, also stopping every user server with ``servers`` and the proxy it launched with ``proxy``.
    Called once the 202 answer is out (:func:`check_shutdown` authorised the caller before)."""
    ctx.lifecycle.request_exit(stop_servers=servers, stop_proxy=proxy)
