"""A small TOML writer for ``config show`` and ``--generate-config`` (the stdlib only reads TOML)."""

from __future__ import annotations

import json
import math
from typing import Any


def value(v: Any) -> str:
    """One TOML value. JSON string escapes are valid TOML basic-string escapes."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf" if v < 0 else "nan")
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items() if x is not None) + "}"
    return json.dumps(str(v))


def key(k: str) -> str:
    bare = k.replace("_", "").replace("-", "").isalnum() and k.isascii()
    return k if bare else json.dumps(k)


def dump(data: dict[str, Any], prefix: str = "") -> str:
    """Scalars first, then every dict as a ``[table]``; ``None`` becomes a comment (TOML has no null)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for k, v in data.items():
        if isinstance(v, dict):
            tables.append((f"{prefix}.{key(k)}" if prefix else key(k), v))
        elif v is None:
            lines.append(f"# {key(k)} is unset")
        else:
            lines.append(f"{key(k)} = {value(v)}")
    chunks = ["\n".join(lines)] if lines else []
    for name, v in tables:
        body = dump(v, name)
        chunks.append(f"[{name}]\n{body}" if body else f"[{name}]")
    return "\n\n".join(chunks)
