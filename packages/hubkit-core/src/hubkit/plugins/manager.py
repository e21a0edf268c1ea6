"""Build the plugin manager: built-ins, then entry points of the ``hubkit`` group, then validation.

One manager per hub (no module global, nothing at import time). Loading is our own small loop over
``importlib.metadata`` so we know each plugin's distribution and can name it when it breaks. Backends the hub
builds are registered on the same manager (:meth:`PluginHost.register_instance`), so their runtime hooks reach
exactly the instance this hub configured.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Iterable, Sequence
from importlib.metadata import entry_points
from types import ModuleType

import pluggy

from ..errors import PluginError
from . import ENTRY_POINT_GROUP, PROJECT, hookspecs

BUILTIN_PLUGINS: tuple[str, ...] = (
    "hubkit.builtin.normalize",
    "hubkit.builtin.dummy_auth",
    "hubkit.builtin.null_proxy",
)
# Built-ins a production hub has no use for: registered only when the configuration names their backend.
ON_DEMAND_PLUGINS: dict[str, str] = {
    "stand-in": "hubkit.builtin.standin",
    "test": "hubkit.builtin.standin",  # the stand-in spawner's former name, still accepted
}


class PluginHost(pluggy.PluginManager):
    """pluggy's manager plus what hubkit needs to know about each plugin: the distribution it came from."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(hookspecs)
        self.distributions: dict[str, str] = {}
        self.trace_calls = os.environ.get("HUBKIT_TRACE_PLUGINS", "") not in ("", "0")  # log every hook call

    def register_plugin(self, plugin: object, name: str, distribution: str) -> None:
        self.register(plugin, name=name)
        self.distributions[name] = distribution

    def distribution_of(self, plugin_name: str) -> str | None:
        return self.distributions.get(plugin_name)

    def register_instance(self, instance: object, name: str, distribution: str) -> bool:
        """Register a backend instance the hub built if it implements runtime hooks; ``False`` if it has none.

        A backend instance may only implement runtime hooks: registration already happened."""
        hooks = [a for a in dir(type(instance)) if a.startswith("hubkit_")]
        if not hooks:
            return False
        for hook in hooks:
            if hook in hookspecs.REGISTRATION_HOOKS:
                raise PluginError(
                    name, f"a backend instance cannot implement {hook}", distribution=distribution
                )
        self.register_plugin(instance, name, distribution)
        validate(self)
        return True


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [p.strip() for p in raw.split(",") if p.strip()]


def build_plugin_manager(
    *,
    load_entry_points: bool = True,
    allow: Sequence[str] | None = None,
    block: Iterable[str] = (),
    extra: Sequence[object] = (),
    backends: Iterable[str] | None = None,
) -> PluginHost:
    """Create and validate a manager.

    ``allow`` (or env ``HUBKIT_PLUGINS``) limits which entry-point plugins load; ``block`` (or env
    ``HUBKIT_DISABLE_PLUGINS``) skips some. ``extra`` objects are registered last (tests, inline plugins).
    ``backends`` are the backend names a hub's configuration picks: on-demand built-ins load only for those
    (``None``, no configuration at hand: all of them).
    """
    pm = PluginHost()
    names = ON_DEMAND_PLUGINS if backends is None else backends
    wanted = [ON_DEMAND_PLUGINS[b] for b in names if b in ON_DEMAND_PLUGINS]
    for modname in dict.fromkeys([*BUILTIN_PLUGINS, *wanted]):
        mod = importlib.import_module(modname)
        pm.register_plugin(mod, modname.rsplit(".", 1)[1], "hubkit-core")

    allow = list(allow) if allow is not None else _env_list("HUBKIT_PLUGINS")
    blocked = set(block) | set(_env_list("HUBKIT_DISABLE_PLUGINS") or [])
    if load_entry_points:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in blocked or (allow is not None and ep.name not in allow):
                continue
            if pm.has_plugin(ep.name):
                continue
            dist = ep.dist.name if ep.dist is not None else None
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    ep.name, f"failed to import {ep.value}: {exc!r}", distribution=dist
                ) from exc
            pm.register_plugin(plugin, ep.name, dist or "?")

    for i, obj in enumerate(extra):
        name = getattr(obj, "__name__", None) or f"extra-{i}"
        pm.register_plugin(obj, name, "inline")

    validate(pm)
    return pm


def validate(pm: PluginHost) -> None:
    """Fail fast: unknown hooks, async registration hooks, wrappers on runtime hooks."""
    dists = pm.distributions
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = exc.plugin if isinstance(exc.plugin, str) else (pm.get_name(exc.plugin) or "?")
        raise PluginError(name, f"implements an unknown hook: {exc}", distribution=dists.get(name)) from exc
    for hook_name in dir(pm.hook):
        if not hook_name.startswith("hubkit_"):
            continue
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            dist = dists.get(impl.plugin_name)
            if hook_name in hookspecs.REGISTRATION_HOOKS and inspect.iscoroutinefunction(impl.function):
                raise PluginError(impl.plugin_name, f"{hook_name} must not be async", distribution=dist)
            if hook_name not in hookspecs.REGISTRATION_HOOKS and (impl.hookwrapper or impl.wrapper):
                raise PluginError(
                    impl.plugin_name,
                    f"wrappers are not supported on runtime hook {hook_name}",
                    distribution=dist,
                )


def plugin_modules(pm: PluginHost) -> list[tuple[str, str, ModuleType | object]]:
    """``(name, distribution, plugin)`` for every registered plugin, for ``hubkit plugins``."""
    dists = pm.distributions
    out = []
    for name, plugin in pm.list_name_plugin():
        if name is None:
            continue
        out.append((name, dists.get(name, "?"), plugin))
    return sorted(out)
