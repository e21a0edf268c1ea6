"""Plugin machinery: the pluggy project name, the ``hookimpl`` marker, the manager and the async dispatcher.

Only this package calls pluggy; the rest of the core talks to plugins through :class:`hubkit.plugins.hooks.Hooks`.
"""

from __future__ import annotations

import pluggy

PROJECT = "hubkit"
ENTRY_POINT_GROUP = "hubkit"

hookimpl = pluggy.HookimplMarker(PROJECT)
_hookspec = pluggy.HookspecMarker(PROJECT)

__all__ = ["ENTRY_POINT_GROUP", "PROJECT", "hookimpl"]
