"""What the CLI subcommands do (kept apart from argument parsing so tests can call them directly)."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url

from .errors import ConfigError, NotFound

SECRET_WORDS = ("password", "secret", "token", "crypt_keys", "private_key", "api_key")


def _registries(settings: Any = None, load_entry_points: bool = True) -> Any:
    """The plugin manager and registries as a hub with ``settings`` (default: the defaults) would build them."""
    from .config.models import Settings
    from .plugins.hooks import collect_registries
    from .plugins.manager import build_plugin_manager

    s = settings if settings is not None else Settings()
    backends = (s.auth.backend, s.spawner.backend, s.proxy.backend)
    pm = build_plugin_manager(load_entry_points=load_entry_points, backends=backends)
    return pm, collect_registries(pm)


def generate_config(path: str, *, force: bool = False) -> int:
    from .config.generate import generate_config as gen

    _pm, registries = _registries()
    text = gen(registries)
    if path == "-":
        sys.stdout.write(text)
        return 0
    p = Path(path)
    if p.exists() and not force:
        raise ConfigError("exists already; pass --force to overwrite", source=str(p))
    p.write_text(text, encoding="utf-8")
    print(f"wrote {p}")
    return 0


def _storage_and_engine(settings: Any) -> tuple[Any, Any]:
    from .runtime.backends import validate_sections
    from .storage.engine import create_engine, normalize_url

    _pm, registries = _registries(settings)
    validate_sections(settings, registries)
    data_dir = str(Path(settings.hub.data_dir).resolve())
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    return registries.storage, create_engine(normalize_url(settings.hub.db_url, data_dir))


async def db_upgrade(settings: Any) -> int:
    from .storage import migrate

    storage, engine = _storage_and_engine(settings)
    try:
        before = await migrate.current_heads(engine)
        await migrate.upgrade(engine, storage)
        after = await migrate.current_heads(engine)
    finally:
        await engine.dispose()
    url = make_url(str(engine.url)).render_as_string(hide_password=True)
    print(f"{url}: {', '.join(sorted(before)) or 'empty'} -> {', '.join(sorted(after))}")
    return 0


def _sqlite_file(settings: Any, action: str) -> str:
    from .storage.backup import sqlite_path
    from .storage.engine import normalize_url

    data_dir = str(Path(settings.hub.data_dir).resolve())
    return sqlite_path(normalize_url(settings.hub.db_url, data_dir), action)


def db_backup(settings: Any, dest: str) -> int:
    from .storage.backup import backup

    info = backup(_sqlite_file(settings, "backup"), dest)
    print(
        f"backed up to {info.path}: {info.size} bytes, schema {', '.join(info.revisions)}, "
        f"{info.users} users, {info.servers} servers, integrity ok"
    )
    return 0


def db_restore(settings: Any, source: str) -> int:
    from .storage.backup import restore
    from .storage.migrate import script_revisions

    db = _sqlite_file(settings, "restore")
    info, kept = restore(source, db, script_revisions(_registries()[1].storage))
    print(
        f"restored {source} into {db}: schema {', '.join(info.revisions)}, {info.users} users, "
        f"{info.servers} servers"
    )
    if kept:
        print(f"the database it replaced is kept as {kept}")
    return 0


async def import_jupyterhub(settings: Any, source: str, *, dry_run: bool, json_out: bool) -> int:
    from .importers.jupyterhub import run_import

    storage, engine = _storage_and_engine(settings)
    try:
        return await run_import(
            settings, source, dry_run=dry_run, json_out=json_out, engine=engine, storage=storage
        )
    finally:
        await engine.dispose()


async def token(
    settings: Any, user: str, scopes: list[str], *, note: str, expires_in: float | None, create: bool
) -> int:
    from .auth.tokens import issue_token
    from .storage import migrate
    from .storage.engine import create_sessionmaker, is_sqlite
    from .storage.orm import User

    storage, engine = _storage_and_engine(settings)
    try:
        await migrate.ensure_schema(engine, storage, auto=is_sqlite(engine.url))
        async with create_sessionmaker(engine)() as s:
            # only the id: loading the row would decrypt its auth_state, which minting a token never needs
            user_id = (await s.execute(select(User.id).where(User.name == user))).scalar_one_or_none()
            if user_id is None:
                if not create:
                    raise NotFound(f"no user {user!r} (pass --create to add it)")
                row = User(name=user, admin=user in settings.hub.admin_users, cookie_id=secrets.token_hex(16))
                s.add(row)
                await s.flush()
                user_id = row.id
            secret, _tok = await issue_token(
                s, user_id=user_id, scopes=scopes, note=note, expires_in=expires_in
            )
            await s.commit()
    finally:
        await engine.dispose()
    print(secret)
    return 0


def plugins(settings: Any = None) -> int:
    from .plugins.manager import plugin_modules

    pm, registries = _registries(settings)
    print("plugins:")
    for name, dist, plugin in plugin_modules(pm):
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        print(f"  {name} ({dist}): {', '.join(hooks) or '-'}")
    for title, reg in (
        ("authenticators", registries.authenticators),
        ("spawners", registries.spawners),
        ("proxies", registries.proxies),
    ):
        print(f"{title}:")
        for entry in reg:
            if entry.alias_of is not None:
                print(f"  {entry.name}: former name of {entry.alias_of} (plugin {entry.plugin})")
            else:
                print(f"  {entry.name}: {entry.description or '-'} (plugin {entry.plugin})")
    if registries.config_sections.sections:
        print("config sections:")
        for name in sorted(registries.config_sections.sections):
            print(f"  [plugins.{name}]")
    if registries.storage.migration_locations:
        print("migration branches:")
        for branch, loc in sorted(registries.storage.migration_locations.items()):
            print(f"  {branch}: {loc}")
    return 0


def mask(data: Any, key: str = "") -> Any:
    if isinstance(data, dict):
        return {k: mask(v, k) for k, v in data.items()}
    if isinstance(data, list) and not any(w in key.lower() for w in SECRET_WORDS):
        return [mask(v, key) for v in data]
    if key.endswith("_file") or key.endswith("_path"):
        return data
    if any(w in key.lower() for w in SECRET_WORDS) and isinstance(data, (str, list)) and data:
        return "********"
    if key == "db_url" and isinstance(data, str):
        return make_url(data).render_as_string(hide_password=True)
    return data


def effective_config(settings: Any) -> dict[str, Any]:
    data: dict[str, Any] = settings.model_dump(mode="json")
    for role in ("auth", "spawner", "proxy"):
        for name, section in getattr(settings, role).backends.items():
            data[role][name] = section
    masked: dict[str, Any] = mask(data)
    return masked


def config_show(settings: Any) -> str:
    from .config.toml_out import dump
    from .hubservices.registry import check
    from .runtime.backends import validate_sections
    from .runtime.hub import hub_urls

    validate_sections(settings, _registries(settings)[1])  # show only a configuration the hub would accept
    check(settings.services, hub_urls(settings)[0])
    return dump(effective_config(settings))
