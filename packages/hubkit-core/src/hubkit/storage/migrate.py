"""Alembic, driven from code: ``hubkit db upgrade`` and the hub's first start on an empty database.

The core's revisions live in :mod:`hubkit.storage.migrations` on branch ``hubkit-core``; plugins add their own
branches through :class:`hubkit.plugins.registry.StorageRegistry`. All branches upgrade together (``heads``).
Alembic runs on a sync connection handed over from the async engine, so one code path serves SQLite and
PostgreSQL and works inside a running event loop.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, MetaData, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import ConfigError
from ..plugins.registry import StorageRegistry
from .locks import MIGRATION_LOCK
from .orm import metadata as core_metadata

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic itself is imported lazily: it costs ~0.4 s, and a restarting hub must answer at once.

logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per setup step is noise at every start

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
CORE_BRANCH = "hubkit-core"


def resolve_location(location: str) -> str:
    """``"pkg.module:subdir"`` or a plain directory path → an absolute directory."""
    if ":" in location and not os.path.isabs(location):
        module, _, sub = location.partition(":")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"migration location {location!r}: package {module!r} not found")
        return str(Path(next(iter(spec.submodule_search_locations))) / sub)
    return os.path.abspath(location)


def version_locations(storage: StorageRegistry | None = None) -> list[str]:
    locations = [str(MIGRATIONS_DIR / "versions")]
    if storage is not None:
        locations += [resolve_location(loc) for loc in storage.migration_locations.values()]
    return locations


def alembic_config(storage: StorageRegistry | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(version_locations(storage)))
    cfg.attributes["target_metadata"] = all_metadata(storage)
    return cfg


def all_metadata(storage: StorageRegistry | None) -> list[MetaData]:
    extra = list(storage.metadatas) if storage is not None else []
    return [core_metadata, *(m for m in extra if m is not core_metadata)]


async def _run(
    engine: AsyncEngine, storage: StorageRegistry | None, command_name: str, revision: str
) -> None:
    """Run an Alembic command on a sync connection handed over from the async engine."""
    from alembic import command

    cfg = alembic_config(storage)
    fn = getattr(command, command_name)

    def go(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            # hub replicas starting together on an empty database, or a schema Job beside them: one migrates,
            # the others wait here for its commit and then find the schema current (lock ends with the transaction)
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": MIGRATION_LOCK[0], "b": MIGRATION_LOCK[1]}
            )
        cfg.attributes["connection"] = conn
        fn(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(go)


async def upgrade(
    engine: AsyncEngine, storage: StorageRegistry | None = None, revision: str = "heads"
) -> None:
    await _run(engine, storage, "upgrade", revision)


async def downgrade(
    engine: AsyncEngine, storage: StorageRegistry | None = None, revision: str = "base"
) -> None:
    await _run(engine, storage, "downgrade", revision)


def _current(conn: Connection) -> set[str]:
    if not inspect(conn).has_table("alembic_version"):
        return set()
    return {r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))}


def script_heads(storage: StorageRegistry | None = None) -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config(storage)).get_heads())


def script_revisions(storage: StorageRegistry | None = None) -> set[str]:
    """Every revision this hubkit (and its plugins) can upgrade from."""
    from alembic.script import ScriptDirectory

    return {r.revision for r in ScriptDirectory.from_config(alembic_config(storage)).walk_revisions()}


_REV = re.compile(r"^revision(?:\s*:\s*str)?\s*=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision(?:\s*:[^=]+)?\s*=\s*(.+)$", re.M)


def quick_heads(storage: StorageRegistry | None = None) -> set[str] | None:
    """Heads read straight from the version files (no Alembic import); ``None`` when unsure."""
    revs: set[str] = set()
    downs: set[str] = set()
    for loc in version_locations(storage):
        for f in Path(loc).glob("*.py"):
            src = f.read_text(encoding="utf-8")
            rev, down = _REV.search(src), _DOWN.search(src)
            if rev is None or down is None:
                return None
            revs.add(rev.group(1))
            downs.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return (revs - downs) or None


async def current_heads(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def has_tables(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        names: Sequence[str] = await conn.run_sync(lambda c: inspect(c).get_table_names())
    return bool(names)


async def schema_diff(engine: AsyncEngine, storage: StorageRegistry | None = None) -> list[Any]:
    """Differences between the migrated database and the ORM models (empty when they match)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    metadatas = all_metadata(storage)

    def compare(conn: Connection) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, metadatas))  # type: ignore[arg-type]  # a list is accepted

    async with engine.connect() as conn:
        return await conn.run_sync(compare)


async def ensure_schema(engine: AsyncEngine, storage: StorageRegistry | None, *, auto: bool) -> None:
    """Create the schema on an empty database; otherwise require it to be current.

    ``auto`` (SQLite) also upgrades an existing database; on PostgreSQL an out-of-date schema is an error
    that names the command to run, since a shared database should be migrated on purpose.
    """
    if not await has_tables(engine):
        await upgrade(engine, storage)
        return
    current = await current_heads(engine)
    if current and current == quick_heads(storage):
        return
    wanted = script_heads(storage)
    if current == wanted:
        return
    if auto:
        await upgrade(engine, storage)
        return
    raise ConfigError(
        f"database schema is at {sorted(current) or 'no revision'}, this hubkit needs {sorted(wanted)}; "
        "run `hubkit db upgrade` first",
        key="hub.db_url",
    )
