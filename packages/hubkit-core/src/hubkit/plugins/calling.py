"""The one place that knows runtime hooks may be async.

pluggy calls implementations synchronously: with ``firstresult`` a coroutine object counts as a result, so a
plain ``pm.hook.x()`` would stop at the first ``async def`` implementation even when it meant "not mine". Here
we walk the implementations in pluggy's own order, await coroutines, and run sync implementations in a worker
thread. Errors are re-raised as :class:`PluginError` naming the plugin and its distribution.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import pluggy

from ..errors import HubkitError, PluginError
from .manager import PluginHost

log = logging.getLogger("hubkit.plugins")


def _impls(pm: PluginHost, name: str, /) -> list[pluggy.HookImpl]:
    caller = getattr(pm.hook, name)
    # pluggy stores impls in call order reversed (trylast first ... tryfirst last)
    return list(reversed(caller.get_hookimpls()))


async def _invoke(pm: PluginHost, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
    args = {k: kwargs[k] for k in impl.argnames}
    func: Callable[..., Any] = impl.function
    try:
        if inspect.iscoroutinefunction(func):
            result = await func(**args)
        else:
            result = await anyio.to_thread.run_sync(functools.partial(func, **args))
            if inspect.isawaitable(result):  # a sync function that returned an awaitable
                result = await result
    except HubkitError:
        # Deliberate, typed outcomes (AuthFailed, SpawnFailed, PluginError...) pass through unchanged.
        raise
    except Exception as exc:
        dist = pm.distribution_of(impl.plugin_name)
        raise PluginError(
            impl.plugin_name, f"{impl.function.__name__} raised {exc!r}", distribution=dist
        ) from exc
    if pm.trace_calls:
        log.info("hook %s from %s -> %r", func.__name__, impl.plugin_name, result)
    return result


async def call_first(pm: PluginHost, hook_name: str, /, **kwargs: Any) -> Any:
    """First non-``None`` result, or ``None``. Later implementations are not called."""
    for impl in _impls(pm, hook_name):
        result = await _invoke(pm, impl, kwargs)
        if result is not None:
            return result
    return None


async def call_all(pm: PluginHost, hook_name: str, /, **kwargs: Any) -> list[Any]:
    """Every implementation, one after another in order; the list of non-``None`` results."""
    results = []
    for impl in _impls(pm, hook_name):
        result = await _invoke(pm, impl, kwargs)
        if result is not None:
            results.append(result)
    return results


async def call_chain(pm: PluginHost, hook_name: str, arg: str, value: Any, /, **kwargs: Any) -> Any:
    """Each implementation receives the previous one's result as ``arg``; ``None`` keeps the value."""
    for impl in _impls(pm, hook_name):
        result = await _invoke(pm, impl, {**kwargs, arg: value})
        if result is not None:
            value = result
    return value


async def broadcast(pm: PluginHost, hook_name: str, /, **kwargs: Any) -> None:
    """Notify every implementation; an exception is logged with the plugin's name and does not propagate."""
    for impl in _impls(pm, hook_name):
        try:
            await _invoke(pm, impl, kwargs)
        except Exception as exc:
            log.error("%s: %s", hook_name, exc)
