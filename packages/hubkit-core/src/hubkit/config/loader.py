"""Settings from one TOML file, then ``HUBKIT_<SECTION>__<KEY>`` environment variables, then CLI flags.

Every error names where the bad value came from (the file, the variable, or the flag), the dotted key and
what was expected, as a :class:`hubkit.errors.ConfigError` (the CLI exits 2). Backend sections
(``[spawner.docker]``) are set aside here and validated by the backend's own model once plugins load
(:func:`hubkit.runtime.backends.validate_sections`).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from .models import Settings

BACKEND_ROLES = ("auth", "spawner", "proxy")
ENV_PREFIX = "HUBKIT_"
SECRET_KEYS = ("token", "secret", "password", "crypt_keys")
Path_ = tuple[str, ...]


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", source=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read config file: {exc.__class__.__name__}: {exc}", source=str(p)
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(p)) from None


def _env_value(raw: str) -> Any:
    """Lists and tables as JSON (``["a","b"]``); everything else stays a string for pydantic to coerce."""
    s = raw.strip()
    if s[:1] in "[{":
        try:
            return json.loads(s)
        except json.JSONDecodeError:
            return raw
    return raw


def from_env(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[Path_, str]]:
    data: dict[str, Any] = {}
    sources: dict[Path_, str] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = tuple(p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p)
        if len(parts) < 2:
            continue
        _set(data, parts, _env_value(raw))
        sources[parts] = f"environment {name}"
    return data, sources


def _set(data: dict[str, Any], path: Path_, value: Any) -> None:
    node = data
    for p in path[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = node[p] = {}
        node = nxt
    node[path[-1]] = value


def merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def _paths(data: Mapping[str, Any], prefix: Path_ = ()) -> list[Path_]:
    out: list[Path_] = []
    for k, v in data.items():
        out.append((*prefix, k))
        if isinstance(v, Mapping):
            out += _paths(v, (*prefix, k))
    return out


def split_backend_sections(raw: dict[str, Any]) -> dict[str, Any]:
    """Move ``[spawner.<name>]`` tables (dicts under a role that are not fields) into ``backends``."""
    models: dict[str, type[BaseModel]] = {
        name: field.annotation  # type: ignore[misc]
        for name, field in Settings.model_fields.items()
        if name in BACKEND_ROLES
    }
    out = dict(raw)
    for role in BACKEND_ROLES:
        section = out.get(role)
        if not isinstance(section, dict):
            continue
        fields = models[role].model_fields
        section = dict(section)
        backends: dict[str, Any] = dict(section.pop("backends", {}) or {})
        for k in list(section):
            if k not in fields and isinstance(section[k], dict):
                backends[k] = section.pop(k)
        section["backends"] = backends
        out[role] = section
    return out


def source_of(loc: Path_, sources: Mapping[Path_, str], default: str) -> str:
    for n in range(len(loc), 0, -1):
        if loc[:n] in sources:
            return sources[loc[:n]]
    return default


def _loc(err: Mapping[str, Any]) -> Path_:
    loc = tuple(str(p) for p in err.get("loc", ()))
    # backend sections were moved under "backends": report them as the user wrote them
    if len(loc) >= 2 and loc[1] == "backends":
        loc = (loc[0], *loc[2:])
    return loc


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """File < environment < ``overrides`` (CLI flags, as ``{"hub": {"port": 8000}}``)."""
    sources: dict[Path_, str] = {}
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_file(path)
        sources.update({p: str(path) for p in _paths(raw)})
    env_data, env_sources = from_env(os.environ if env is None else env)
    raw = merge(raw, env_data)
    sources.update(env_sources)
    if overrides:
        raw = merge(raw, overrides)
        sources.update({p: "command line" for p in _paths(overrides)})
    try:
        return Settings.model_validate(split_backend_sections(raw))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _loc(err)
        where = source_of(loc, sources, str(path) if path else "defaults")
        if err.get("type") == "extra_forbidden":
            msg = "unknown key"
        else:
            msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            shown = err.get("input")
            secret = bool(loc) and any(w in loc[-1].lower() for w in SECRET_KEYS)
            # never echo a secret, nor a whole table (it may hold one)
            if not secret and not isinstance(shown, dict | list):
                msg = f"{msg} (got {shown!r})"
        raise ConfigError(msg, source=where, key=".".join(loc)) from None
