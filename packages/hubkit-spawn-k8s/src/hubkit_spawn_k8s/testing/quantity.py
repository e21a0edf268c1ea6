"""Re-export: the fake scheduler shares the spawner's quantity parser."""

from __future__ import annotations

from ..quantity import parse_quantity

__all__ = ["parse_quantity"]
