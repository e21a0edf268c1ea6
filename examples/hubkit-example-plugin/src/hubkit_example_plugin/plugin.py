"""The plugin. hubkit loads ``plugin`` through the entry point; it only declares the config section.

The runtime hooks live on :class:`AuditHooks`, which each hub builds from *its* validated
``[plugins.example_audit]`` section (``hooks=`` of ``hubkit_register_config``) and registers as a plugin of
its own. Nothing is kept at module or class level, so two hubs in one process never share a configuration.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

from hubkit import hookimpl
from hubkit.interfaces import AuthResult, RouteChange, ServerSpec
from hubkit.plugins.registry import ConfigSectionRegistry
from pydantic import BaseModel, ConfigDict, Field

SECTION = "example_audit"


class AuditConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    log_file: str | None = Field(None, description="Append one JSON line per route change here (unset: off).")
    refused_prefixes: list[str] = Field(
        default_factory=list, description="Refuse logins of usernames starting with any of these."
    )
    server_env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment for every server."
    )


class AuditHooks:
    """One hub's runtime hooks, built by that hub from its config section."""

    def __init__(self, config: AuditConfig) -> None:
        self.config = config

    @hookimpl
    def hubkit_route_changed(self, change: RouteChange) -> None:
        if not self.config.log_file:
            return
        record = {
            "time": datetime.now(UTC).isoformat(),
            "kind": change.kind.value,
            "routespec": change.route.routespec,
            "target": change.route.target,
            "user": change.route.data.get("user"),
        }
        path = Path(self.config.log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    @hookimpl
    async def hubkit_check_allowed(self, result: AuthResult) -> bool | None:
        if any(result.name.startswith(p) for p in self.config.refused_prefixes):
            return False
        return None  # no opinion: other rules decide

    @hookimpl
    def hubkit_pre_spawn(self, spec: ServerSpec) -> ServerSpec | None:
        if not self.config.server_env:
            return None
        return dataclasses.replace(spec, env={**spec.env, **self.config.server_env})


class AuditPlugin:
    """What the entry point loads: it holds no state, so one object serves every hub in the process."""

    __name__ = "example-audit"

    @hookimpl
    def hubkit_register_config(self, config: ConfigSectionRegistry) -> None:
        config.add(SECTION, AuditConfig, hooks=AuditHooks)


plugin = AuditPlugin()
