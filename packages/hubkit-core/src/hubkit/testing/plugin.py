"""The ``hubkit`` pytest plugin (entry point ``pytest11``): fixtures for hubkit and plugin tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    # SQLAlchemy's asyncio extension targets asyncio, so hubkit tests run there only.
    return "asyncio"
