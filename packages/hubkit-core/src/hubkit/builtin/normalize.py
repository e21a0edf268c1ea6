"""Fallback username normalization: strip surrounding whitespace."""

from __future__ import annotations

from ..plugins import hookimpl


@hookimpl(trylast=True)
def hubkit_normalize_username(name: str) -> str | None:
    return name.strip()
