"""``hubkit import-jupyterhub``: copy users, groups, named servers and API tokens from a JupyterHub database.

``source`` reads JupyterHub's tables, ``plan`` decides (pure), ``target`` reads and writes hubkit's,
``report`` says what happened; :func:`run_import` ties them together for the CLI.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from ...errors import HubkitError
from .plan import HubkitState, Policy, plan_import
from .report import as_json, as_text
from .source import read_jupyterhub


async def run_import(
    settings: Any, source: str, *, dry_run: bool, json_out: bool, engine: Any, storage: Any
) -> int:
    """Read ``source``, plan against the hubkit database behind ``engine``, apply unless ``dry_run``."""
    from ...storage import migrate
    from ...storage.engine import create_sessionmaker, is_sqlite
    from .target import apply, load_state

    data = await read_jupyterhub(source)
    fresh = not await _has_database(engine)
    if not dry_run:
        await migrate.ensure_schema(engine, storage, auto=is_sqlite(engine.url))
    elif not fresh and await migrate.current_heads(engine) != migrate.script_heads(storage):
        raise HubkitError(
            "hubkit's database schema is not current: run `hubkit db upgrade` (a dry run writes nothing)"
        )
    policy = Policy(
        allow_named_servers=settings.hub.allow_named_servers,
        named_server_limit=settings.hub.named_server_limit_per_user,
        lower_usernames=settings.auth.normalize_usernames,
    )
    shown = make_url(source).render_as_string(hide_password=True)
    async with create_sessionmaker(engine)() as session:
        state = (
            HubkitState(users={}, groups={}, servers={}, token_hashes={})
            if fresh
            else await load_state(session)
        )
        plan = plan_import(data, state, source=shown, policy=policy, now=datetime.now(UTC))
        if not dry_run and plan.actions:
            try:
                await apply(session, plan.actions)
            except IntegrityError:
                raise HubkitError(
                    "hubkit's database changed while the import ran (a user, group or server was added at the "
                    "same time): nothing was written; run the import again"
                ) from None
    sys.stdout.write((as_json(plan, dry_run=dry_run) if json_out else as_text(plan, dry_run=dry_run)) + "\n")
    return 0


async def _has_database(engine: Any) -> bool:
    """Whether hubkit's database exists with tables, found out without creating a SQLite file."""
    import os

    from ...storage import migrate
    from ...storage.engine import is_sqlite

    database = engine.url.database or ""
    on_disk = is_sqlite(engine.url) and database not in ("", ":memory:")
    if on_disk and not os.path.exists(database):  # noqa: ASYNC240 (one stat, before any connection)
        return False
    return bool(await migrate.has_tables(engine))
