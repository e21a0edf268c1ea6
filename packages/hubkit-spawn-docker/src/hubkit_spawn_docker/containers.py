"""Turn a :class:`ServerSpec` plus the config into Docker ``create`` arguments (pure: no Docker calls).

Keeping this pure makes the env contract, mounts, limits and network wiring testable without an engine.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from docker.types import Mount
from hubkit.interfaces import ServerSpec

from .config import DockerSpawnerConfig
from .naming import render, server_labels, volume_labels


@dataclass(frozen=True)
class Plan:
    """Everything decided before the container exists; saved as state so a crash mid-spawn is recoverable."""

    container_name: str
    image: str
    network_mode: str
    listen_port: int  # inside the container (== host port in host mode)
    volume_name: str | None
    volume_labels: dict[str, str] = field(default_factory=dict)
    create_kwargs: dict[str, Any] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        return {
            "container_name": self.container_name,
            "image": self.image,
            "network_mode": self.network_mode,
            "port": self.listen_port,
            "volume": self.volume_name,
        }


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now on the host (host network mode: the container binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def build_env(spec: ServerSpec, config: DockerSpawnerConfig, ip: str, port: int) -> dict[str, str]:
    env = spec.env_with_url(ip, port)
    if spec.api_token:
        env.setdefault("JUPYTERHUB_API_TOKEN", spec.api_token)
        env.setdefault("JPY_API_TOKEN", spec.api_token)
    env.setdefault("JUPYTERHUB_API_URL", spec.hub_api_url)
    env.setdefault("JUPYTERHUB_SERVICE_PREFIX", spec.url_prefix)
    env.setdefault("JUPYTERHUB_USER", spec.user.name)
    env.setdefault("JUPYTERHUB_SERVER_NAME", spec.server_name)
    mem = config.mem_limit_bytes()
    if mem is not None:
        env["MEM_LIMIT"] = str(mem)
    if config.cpu_limit is not None:
        env["CPU_LIMIT"] = str(config.cpu_limit)
    env.update(config.extra_env)
    return env


def build_command(
    spec: ServerSpec, config: DockerSpawnerConfig, image_cmd: list[str] | None
) -> list[str] | None:
    """``None`` means "the image's own command" (no args to add)."""
    if spec.cmd:
        return [*spec.cmd, *spec.args]
    if config.command != "image":
        return [config.command, *spec.args]
    if spec.args:
        return [*(image_cmd or []), *spec.args]
    return None


def plan_container(
    spec: ServerSpec,
    config: DockerSpawnerConfig,
    image: str,
    image_cmd: list[str] | None,
    *,
    host_port: int | None = None,
) -> Plan:
    server = spec.server_name
    name = render(config.container_name_template, hub_id=spec.hub_id, user=spec.user.name, server=server)
    labels = server_labels(spec.hub_id, spec.user.name, server, spec.server_id)

    if config.network_mode == "host":
        port, bind_ip = host_port or free_port(config.connect_host), config.connect_host
    else:
        port, bind_ip = config.container_port, "0.0.0.0"

    mounts: list[Mount] = []
    volume_name: str | None = None
    if config.volume_name_template:
        volume_name = render(
            config.volume_name_template, hub_id=spec.hub_id, user=spec.user.name, server=server
        )
        mounts.append(Mount(target=config.home_dir, source=volume_name, type="volume"))
    for m in config.mounts:
        source = m.source
        if m.type == "volume":
            source = render(m.source, hub_id=spec.hub_id, user=spec.user.name, server=server)
        mounts.append(Mount(target=m.target, source=source, type=m.type, read_only=m.read_only))

    kwargs: dict[str, Any] = {
        "name": name,
        "labels": labels,
        "environment": build_env(spec, config, bind_ip, port),
        "mounts": mounts,
        "working_dir": config.home_dir,
        "command": build_command(spec, config, image_cmd),
    }
    if config.mem_limit:
        kwargs["mem_limit"] = config.mem_limit
        kwargs["memswap_limit"] = config.mem_limit  # no swap on top: the limit is the limit
    if config.cpu_limit:
        kwargs["nano_cpus"] = int(config.cpu_limit * 1e9)
    if config.user:
        kwargs["user"] = config.user
    if config.group_add:
        kwargs["group_add"] = list(config.group_add)
    if config.network_mode == "host":
        kwargs["network_mode"] = "host"
    elif config.network_mode == "published":
        kwargs["ports"] = {f"{port}/tcp": (config.host_ip, None)}
        kwargs["extra_hosts"] = {"host.docker.internal": "host-gateway"}
    else:
        kwargs["network"] = config.network_name
    return Plan(
        container_name=name,
        image=image,
        network_mode=config.network_mode,
        listen_port=port,
        volume_name=volume_name,
        volume_labels=volume_labels(spec.hub_id, spec.user.name) if volume_name else {},
        create_kwargs=kwargs,
    )


def endpoint_url(config: DockerSpawnerConfig, state: dict[str, Any], attrs: dict[str, Any]) -> str:
    """Where the hub reaches a started container, from its inspect data."""
    mode = state.get("network_mode", config.network_mode)
    port = int(state["port"])
    if mode == "host":
        return f"http://{config.connect_host}:{port}"
    if mode == "network":
        return f"http://{state['container_name']}:{port}"
    bindings = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for binding in bindings.get(f"{port}/tcp") or []:
        if binding.get("HostPort"):
            return f"http://{config.connect_host}:{binding['HostPort']}"
    raise LookupError(f"container {state['container_name']} has no published port for {port}/tcp")
