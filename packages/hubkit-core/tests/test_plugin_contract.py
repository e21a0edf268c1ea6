"""The contract is the only door: installed plugins import only hubkit's public modules, keep no process-wide
state, and a backend missing a protocol member fails startup naming its distribution."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from hubkit.builtin.null_proxy import NullProxy
from hubkit.errors import PluginError
from hubkit.plugins import hookimpl
from hubkit.testing.contract import internal_imports, package_files, process_state, reachable_files
from hubkit.testing.plugin import make_settings

pytestmark = pytest.mark.timeout(60)


def plugin_entry_points(group: str = "hubkit") -> list[Any]:
    return [ep for ep in entry_points(group=group) if ep.dist is None or ep.dist.name != "hubkit-core"]


@pytest.mark.parametrize(
    "ep", plugin_entry_points() + plugin_entry_points("hubkit.commands"), ids=lambda ep: f"{ep.group}:{ep.name}"
)
def test_installed_plugin_imports_only_the_public_contract(ep: Any) -> None:
    """Hub plugins and installed ``hubkit`` subcommands alike."""
    findings = internal_imports(package_files(ep.module.split(".")[0]))
    assert findings == [], "\n".join(map(str, findings))


@pytest.mark.parametrize("ep", plugin_entry_points(), ids=lambda ep: ep.name)
def test_installed_plugin_keeps_no_process_state(ep: Any) -> None:
    findings = process_state(reachable_files(ep.module))
    assert findings == [], "\n".join(map(str, findings))


def test_core_keeps_no_process_state() -> None:
    findings = process_state(package_files("hubkit"))
    assert findings == [], "\n".join(map(str, findings))


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    bad = tmp_path / "leaky.py"
    bad.write_text(
        "from hubkit.spawn.env import build_env\n"
        "from hubkit import interfaces, runtime\n"
        "import hubkit.storage.orm\n"
        "from hubkit.plugins.registry import HubInfo\n"
        "ACTIVE = set()\n"
        "_latest = []\n"
        "class Keys:\n"
        "    fernet = None\n"
        "    @classmethod\n"
        "    def configure(cls, k):\n"
        "        cls.fernet = k\n"
        "def start(b):\n"
        "    ACTIVE.add(b)\n"
        "    _latest[:] = [b]\n"
        "def remember(x):\n"
        "    global _seen\n"
        "    _seen = x\n"
    )
    imports = [f.what.split()[1].rstrip(",") for f in internal_imports([bad])]
    assert imports == ["hubkit.spawn.env", "hubkit.runtime", "hubkit.storage.orm"]
    state = sorted(f.line for f in process_state([bad]))
    assert state == [11, 13, 14, 16]


class Incomplete:
    """A proxy backend without ``get_routes``: the hub must refuse it at startup."""

    def __init__(self, config: Any, hub: Any) -> None:
        pass

    async def startup(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def add_route(self, route: Any) -> None:
        return None

    async def delete_route(self, routespec: str) -> None:
        return None


class SyncStart(NullProxy):
    def add_route(self, route: Any) -> None:  # type: ignore[override]
        return None


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("backend", "message"),
    [
        (Incomplete, "does not implement get_routes of hubkit.interfaces.ProxyBackend"),
        (SyncStart, "add_route of hubkit.interfaces.ProxyBackend must be async def"),
    ],
)
async def test_backend_checked_against_its_protocol_at_startup(tmp_path: Path, backend: type, message: str) -> None:
    from hubkit.runtime.hub import Hub

    class Plugin:
        __name__ = "broken-proxy"

        @hookimpl
        def hubkit_register_proxies(self, registry: Any) -> None:
            registry.add("broken", backend)

    settings = make_settings(tmp_path / "h", proxy={"backend": "broken"})
    with pytest.raises(PluginError, match=message) as info:
        await Hub.create(settings, extra_plugins=[Plugin()], load_entry_points=False)
    assert info.value.plugin == "broken-proxy" and info.value.distribution == "inline"
