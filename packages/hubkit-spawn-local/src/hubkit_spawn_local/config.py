"""Options of ``[spawner.local]``. Unknown keys are errors, so a typo never silently does nothing."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

DEFAULT_ENV_KEEP = [
    "PATH",
    "LANG",
    "LC_ALL",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "CONDA_DEFAULT_ENV",
    "CONDA_ROOT",
    "JUPYTERHUB_SINGLEUSER_APP",
    "HUBKIT_SINGLEUSER_APP",
]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(value: int | str | None) -> int | None:
    """``"2G"``, ``"512M"``, ``"1.5GiB"`` or a byte count → bytes. ``None``/``0`` mean no limit."""
    if value is None or value == 0 or value == "":
        return None
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    m = _SIZE.match(value)
    if not m:
        raise ValueError(f"not a size: {value!r} (examples: 512M, 2G, 1073741824)")
    unit = (m.group(2) or "").upper()[:1]
    return int(float(m.group(1)) * _UNITS[unit])


class LocalSpawnerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cmd: list[str] = Field(
        default_factory=lambda: ["hubkit-singleuser"],
        description="Server command when [spawner] cmd is empty. A stock jupyterhub-singleuser works too.",
    )
    run_as_user: bool = Field(
        False,
        description="When the hub runs as root, run each server as the OS account named like the hub user.",
    )
    env_keep: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ENV_KEEP),
        description="Variables inherited from the hub's environment (all others are dropped).",
    )
    umask: int = Field(0o022, ge=0, le=0o777, description="umask of the server process (as_user mode).")
    home_dir: str | None = Field(
        None,
        description="Working directory/HOME when not running as the user; '{username}' is replaced. "
        "Default: the hub user's home (same-user mode) or the account's home (as_user mode).",
    )
    create_home: bool = Field(True, description="Create the home directory (home_dir) if it is missing.")
    allow_root_flag: bool = Field(
        True, description="Append --allow-root when the server would run as root (jupyter refuses otherwise)."
    )
    stop_grace_seconds: float = Field(
        10, gt=0, le=300, description="Seconds between SIGTERM and SIGKILL to the server's process group."
    )
    mem_limit: int | str | None = Field(
        None, description="Memory limit, e.g. '2G' (cgroup memory; RLIMIT_AS per process as a fallback)."
    )
    cpu_limit: float | None = Field(
        None, gt=0, description="CPU cores, e.g. 1.5 (needs a writable cgroup cpu controller)."
    )
    limits_required: bool = Field(
        False,
        description="Fail the spawn when a configured limit cannot be enforced (default: warn in the progress log).",
    )
    shared_data_dir: str | None = Field(
        None, description="A folder of shared material linked read-only into each user's home on first start."
    )
    shared_data_link: str = Field("shared", description="Name of the link in the user's home.")
    port_range: list[StrictInt] | None = Field(
        None,
        description="[low, high]: take server ports from this inclusive range, e.g. [40000, 49999] behind a "
        "firewall (default: any free port the OS picks).",
    )
    port_bind_wait_seconds: float = Field(
        30,
        gt=0,
        le=600,
        description="With port_range: how long start waits for the server to listen on its port, so a port "
        "another program took meanwhile is retried with the next one.",
    )
    log_lines: int = Field(
        40, ge=1, le=1000, description="Lines of the server log kept for failure messages."
    )

    @field_validator("mem_limit")
    @classmethod
    def _check_mem(cls, v: int | str | None) -> int | str | None:
        parse_size(v)
        return v

    @field_validator("port_range")
    @classmethod
    def _check_port_range(cls, v: list[int] | None) -> list[int] | None:
        if v is None:
            return v
        if len(v) != 2:
            raise ValueError(f"port_range takes two ports, [low, high] (e.g. [40000, 49999]), not {len(v)}")
        for port in v:
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} in port_range is outside 1..65535")
        low, high = v
        if low > high:
            raise ValueError(f"port_range [{low}, {high}] is reversed: write [{high}, {low}]")
        return v

    @field_validator("shared_data_link")
    @classmethod
    def _check_link(cls, v: str) -> str:
        if not v or "/" in v or v in (".", ".."):
            raise ValueError("a plain file name, e.g. 'shared'")
        return v

    @field_validator("cmd")
    @classmethod
    def _check_cmd(cls, v: list[str]) -> list[str]:
        if not v or not v[0]:
            raise ValueError("cmd needs at least a program name")
        return v

    @property
    def mem_limit_bytes(self) -> int | None:
        return parse_size(self.mem_limit)
