"""``[spawner.docker]``: the options of the Docker spawner, validated at startup so a typo fails early."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

_MEM_RE = re.compile(r"^\d+(\.\d+)?\s*[bkmgt]?$", re.IGNORECASE)
_PLACEHOLDERS = {"hub_id", "user", "server", "server_suffix"}


class MountConfig(BaseModel):
    """An extra mount: a named volume (``source`` may use the name placeholders) or a host folder."""

    model_config = {"extra": "forbid"}

    source: str = Field(min_length=1)
    target: str = Field(pattern=r"^/")
    type: Literal["volume", "bind"] = "volume"
    read_only: bool = False

    @model_validator(mode="after")
    def _bind_is_absolute(self) -> MountConfig:
        if self.type == "bind" and not self.source.startswith("/"):
            raise ValueError(f"bind mount source must be an absolute host path, got {self.source!r}")
        return self


class DockerSpawnerConfig(BaseModel):
    """Options of the ``docker`` spawner backend.

    Name templates accept ``{hub_id}``, ``{user}``, ``{server}`` (empty for the default server) and
    ``{server_suffix}`` (``--<server>`` for named servers, empty otherwise); values are escaped to the
    characters Docker allows, so two different users can never map to one name.
    """

    model_config = {"extra": "forbid"}

    docker_url: str | None = Field(
        None, description="Docker API address; unset: DOCKER_HOST or the local socket."
    )
    image: str = Field(
        "hubkit-singleuser:latest", min_length=1, description="Image used when the user picks none."
    )
    allowed_images: dict[str, str] = Field(
        default_factory=dict,
        description="Label -> image reference; when set, users pick one on the spawn page (checked server-side).",
    )
    pull_policy: Literal["if-missing", "always", "never"] = Field(
        "if-missing", description="When to pull the image: if-missing, always, or never (must be present)."
    )
    command: Literal["image", "hubkit-singleuser", "jupyterhub-singleuser"] = Field(
        "image",
        description="image: the image's own command (Jupyter Docker Stacks work unchanged); or the named "
        "entry point. [spawner] cmd, when set, wins.",
    )
    container_name_template: str = Field(
        "hubkit-{hub_id}-{user}{server_suffix}",
        description="Container name; placeholders {hub_id} {user} {server} {server_suffix} (escaped).",
    )
    home_dir: str = Field("/home/jovyan", pattern=r"^/", description="Where the home volume is mounted.")
    volume_name_template: str = Field(
        "hubkit-{hub_id}-home-{user}",
        description="Named volume mounted at home_dir (same placeholders); empty: no home volume.",
    )
    mounts: list[MountConfig] = Field(
        default_factory=list,
        description="Extra mounts: {source, target, type = volume|bind, read_only}, e.g. shared data read-only.",
    )
    mem_limit: str | None = Field(None, description="Memory limit (no swap on top), e.g. '2g', '512m'.")
    cpu_limit: float | None = Field(None, gt=0, description="CPU limit in CPUs, e.g. 1.5.")
    user: str | None = Field(None, description="'uid', 'uid:gid' or a name; unset: the image's user.")
    group_add: list[str] = Field(default_factory=list, description="Extra groups for the server process.")
    network_mode: Literal["host", "published", "network"] = Field(
        "host",
        description="host: the host's network; published: a port published on host_ip; network: a "
        "user-defined network where the hub reaches containers by name (hub in Docker).",
    )
    network_name: str = Field("", description="User-defined network for network_mode = 'network'.")
    container_port: int = Field(
        8888, ge=1, le=65535, description="Port the server listens on in published and network modes."
    )
    host_ip: str = Field("127.0.0.1", description="Host address ports are published on (published mode).")
    connect_host: str = Field("127.0.0.1", description="Host the hub uses to reach host/published servers.")
    extra_env: dict[str, str] = Field(default_factory=dict, description="Extra environment for containers.")
    remove_on_stop: bool = Field(
        True, description="Remove the container on stop; false keeps it (exited) for inspection."
    )
    stop_timeout: int = Field(10, ge=0, le=600, description="Seconds between SIGTERM and SIGKILL on stop.")
    delete_volume_on_user_delete: bool = Field(
        False, description="Delete a user's home volume when the user is deleted."
    )
    start_check_seconds: float = Field(
        0.0,
        ge=0,
        le=30,
        description="Watch this long after start for a command that exits at once (the core also polls).",
    )

    @field_validator("mem_limit")
    @classmethod
    def _mem(cls, v: str | None) -> str | None:
        if v is not None and not _MEM_RE.match(v.strip()):
            raise ValueError(f"memory limit {v!r} is not a size like '512m' or '2g'")
        return v.strip() if v else v

    @field_validator("container_name_template", "volume_name_template")
    @classmethod
    def _template(cls, v: str) -> str:
        for name in re.findall(r"{([^{}]*)}", v):
            if name not in _PLACEHOLDERS:
                raise ValueError(f"unknown placeholder {{{name}}}; use {sorted(_PLACEHOLDERS)}")
        return v

    @field_validator("allowed_images")
    @classmethod
    def _images(cls, v: dict[str, str]) -> dict[str, str]:
        for label, ref in v.items():
            if not label.strip() or not ref.strip():
                raise ValueError("allowed_images labels and image references must not be empty")
        return v

    @model_validator(mode="after")
    def _network(self) -> DockerSpawnerConfig:
        if self.network_mode == "network" and not self.network_name:
            raise ValueError("network_mode = 'network' needs network_name (a user-defined Docker network)")
        if "{user}" not in self.container_name_template:
            raise ValueError("container_name_template must contain {user}")
        return self

    def mem_limit_bytes(self) -> int | None:
        """The limit in bytes, for the informational MEM_LIMIT variable."""
        if self.mem_limit is None:
            return None
        text = self.mem_limit.lower().replace(" ", "")
        units = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
        mult = units.get(text[-1], 1)
        number = text[:-1] if text[-1] in units else text
        return int(float(number) * mult)
