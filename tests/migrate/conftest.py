from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hubkit.storage import migrate
from hubkit.storage.engine import create_engine
from sqlalchemy.ext.asyncio import AsyncEngine


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An empty hubkit database (SQLite) at the current schema."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/h.sqlite")
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()
