from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # The core's tests fail on SQLAlchemy's deprecation warnings (the root config ignores DeprecationWarning):
    # deprecated API costs CPU while it warns and breaks when SQLAlchemy removes it (issue 14).
    config.addinivalue_line("filterwarnings", "error::sqlalchemy.exc.SADeprecationWarning")


def cli_env(**extra: str) -> dict[str, str]:
    # the core alone: other packages' plugins are not under test here
    env = {**os.environ, "HUBKIT_PLUGINS": ""}
    env.update(extra)
    return env


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real ``hubkit`` CLI in a subprocess."""

    def run(
        *args: str, env: dict[str, str] | None = None, cwd: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hubkit.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=cli_env(**(env or {})),
            cwd=cwd,
            check=False,
        )

    return run
