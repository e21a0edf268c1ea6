"""``hubkit --generate-config``: a commented TOML file with every option of the core and of every
installed plugin (descriptions come from the pydantic ``Field`` descriptions)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .models import ServiceConfig, Settings
from .toml_out import key, value

HEADER = """\
# hubkit configuration. Every option is shown commented out with its default.
# Precedence: this file < environment (HUBKIT_<SECTION>__<KEY>, e.g. HUBKIT_HUB__PORT=8000) < command line.
# Backend options live in [<role>.<backend>] tables, e.g. [spawner.docker]; plugin options in [plugins.<name>].
"""


def _field_lines(model: type[BaseModel]) -> list[str]:
    lines: list[str] = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        if field.description:
            lines.append(f"# {field.description}")
        if field.default_factory is not None:
            default: Any = field.default_factory()  # type: ignore[call-arg]
        else:
            default = field.default
        if default is PydanticUndefined:
            lines.append(f"# {key(name)} =   (required)")
        elif default is None:
            lines.append(f"# {key(name)} =   (unset by default)")
        elif isinstance(default, BaseModel):
            lines.append(f"# {key(name)} = {value(default.model_dump(mode='json'))}")
        else:
            lines.append(f"# {key(name)} = {value(default)}")
        lines.append("")
    return lines


SERVICES_EXAMPLE = """\
# Two examples. The stock jupyterhub-idle-culler (pip install jupyterhub-idle-culler), run and kept running
# by the hub, which hands it a token with just these scopes and JUPYTERHUB_API_URL:
# [[services]]
# name = "idle-culler"
# command = ["jupyterhub-idle-culler", "--timeout=3600", "--cull-every=300"]
# scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
#
# A web service of your own, routed at /services/dashboard/, which logs users in through the hub:
# [[services]]
# name = "dashboard"
# url = "http://127.0.0.1:10101"
# command = ["python3", "/srv/dashboard/app.py"]
# access_all_users = true
# oauth_no_confirm = true
"""


def _services_lines() -> list[str]:
    """``[[services]]`` is a list of tables: shown once, commented, with every field and two examples."""
    description = Settings.model_fields["services"].description or ""
    lines = [f"# [[services]]  -- {description} Repeat the table for each service. Its keys:", ""]
    lines += _field_lines(ServiceConfig)
    return [*lines, SERVICES_EXAMPLE]


def generate_config(registries: Any) -> str:
    out = [HEADER]
    roles = {"auth": registries.authenticators, "spawner": registries.spawners, "proxy": registries.proxies}
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if section == "services":
            out += _services_lines()
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        out.append(f"[{section}]")
        out += _field_lines(model)
        registry = roles.get(section)
        if registry is None:
            continue
        for entry in registry:
            if entry.alias_of is not None:
                continue  # a former name: the current one is listed
            lines = _field_lines(entry.config_model)
            desc = f" {entry.description}" if entry.description else ""
            out.append(f"# [{section}.{key(entry.name)}]  --{desc} (plugin {entry.plugin})")
            out += lines or [""]
    for name, model in sorted(registries.config_sections.sections.items()):
        out.append(f"# [plugins.{key(name)}]")
        out += _field_lines(model)
    return "\n".join(out).rstrip() + "\n"
