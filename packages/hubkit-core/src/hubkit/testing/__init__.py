"""Helpers for testing hubkit and its plugins (also used by plugin authors)."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip when a real component is missing locally; in CI (``CI=true``) fail instead, so a missing
    component can never turn a red run green."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"required component missing in CI: {reason}")
    pytest.skip(reason)
