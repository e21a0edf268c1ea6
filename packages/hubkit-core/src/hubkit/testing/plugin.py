"""The ``hubkit`` pytest plugin (entry point ``pytest11``): fixtures for hubkit and plugin tests.

* ``anyio_backend``: ``"asyncio"`` (SQLAlchemy's asyncio extension targets asyncio).
* ``hub_settings``: a :class:`~hubkit.config.models.Settings` for a throwaway hub (temp SQLite, ``stand-in``
  spawner, ``none`` proxy). Override it in your ``conftest.py`` to change options.
* ``hub_plugins``: extra plugin objects registered in the ``hub`` (default none; override to add yours).
* ``hub``: a started :class:`~hubkit.runtime.hub.Hub`; every server it started is stopped afterwards.
* ``hub_factory``: ``await hub_factory(settings=None, plugins=())`` builds and starts more hubs (same cleanup).
* ``make_user``: ``await make_user("alice", admin=False)`` inserts a user row and returns its name.
* ``register_plugin``: ``register_plugin(obj)`` adds a plugin to the running ``hub`` for its runtime hooks
  (removed after the test).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def anyio_backend() -> str:
    # SQLAlchemy's asyncio extension targets asyncio, so hubkit tests run there only.
    return "asyncio"


def make_settings(data_dir: Path, **sections: dict[str, Any] | list[dict[str, Any]]) -> Any:
    """Settings for a test hub in ``data_dir``; ``sections`` update the defaults, e.g.
    ``spawner={"concurrent_spawn_limit": 5, "stand-in": {"mode": "process"}}`` (backend tables nest as in TOML);
    ``services=[{"name": ...}]`` sets the ``[[services]]`` array."""
    from hubkit.config.loader import split_backend_sections
    from hubkit.config.models import Settings

    raw: dict[str, Any] = {
        "hub": {"data_dir": str(data_dir), "db_url": "sqlite:///hubkit-test.sqlite", "port": 0},
        "spawner": {"backend": "stand-in", "poll_interval": 30},
        "proxy": {"backend": "none"},
    }
    for name, values in sections.items():
        if isinstance(values, list):  # services=[{...}, ...]: an array of tables
            raw[name] = values
        else:
            raw.setdefault(name, {}).update(values)
    return Settings.model_validate(split_backend_sections(raw))


@pytest.fixture
def hub_settings(tmp_path: Path) -> Any:
    return make_settings(tmp_path / "hub")


@pytest.fixture
def hub_plugins() -> Sequence[object]:
    return ()


@pytest.fixture
async def hub_factory(anyio_backend: str) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    from hubkit.runtime.hub import Hub
    from hubkit.storage.orm import Server, ServerStatus, User

    hubs: list[Any] = []

    async def factory(settings: Any, plugins: Sequence[object] = ()) -> Any:
        hub = await Hub.create(settings, extra_plugins=plugins, load_entry_points=False)
        await hub.start()
        hubs.append(hub)
        return hub

    yield factory
    from sqlalchemy import select

    for hub in reversed(hubs):
        if hub.started:
            async with hub.db() as s:
                rows = (
                    await s.execute(
                        select(User.name, Server.name)
                        .join(User, User.id == Server.user_id)
                        .where(Server.status != ServerStatus.STOPPED)
                    )
                ).all()
            for user, name in rows:
                await hub.spawns.stop(user, name)
            await hub.stop()


@pytest.fixture
async def hub(
    hub_factory: Callable[..., Awaitable[Any]], hub_settings: Any, hub_plugins: Sequence[object]
) -> Any:
    return await hub_factory(hub_settings, hub_plugins)


@pytest.fixture
def make_user(hub: Any) -> Callable[..., Awaitable[str]]:
    from hubkit.storage.orm import User

    async def make(name: str, *, admin: bool = False) -> str:
        async with hub.db() as s:
            s.add(User(name=name, admin=admin, cookie_id=secrets.token_hex(16)))
            await s.commit()
        return name

    return make


@pytest.fixture
def register_plugin(hub: Any) -> Any:
    from hubkit.plugins.manager import validate

    added: list[object] = []

    def register(plugin: object, name: str | None = None) -> object:
        hub.pm.register_plugin(
            plugin, name or getattr(plugin, "__name__", None) or f"test-plugin-{len(added)}", "inline"
        )
        validate(hub.pm)
        added.append(plugin)
        return plugin

    yield register
    for plugin in added:
        hub.pm.unregister(plugin)


@pytest.fixture(scope="session")
def postgres_cluster() -> Any:
    """A throwaway PostgreSQL server for the whole test session (skips locally, fails in CI, if missing)."""
    from hubkit.testing import require
    from hubkit.testing.postgres import start_cluster

    try:
        cluster = start_cluster()
    except RuntimeError as exc:
        require(False, str(exc))
        return
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: Any) -> str:
    """The async SQLAlchemy URL of a fresh, empty database in ``postgres_cluster``."""
    return str(postgres_cluster.url(postgres_cluster.create_database()))
