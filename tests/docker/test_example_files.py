"""examples/docker: the compose file, its hub config and Dockerfiles agree with each other and with hubkit.

No registry is reachable here, so the compose stack cannot be brought up; instead its files are checked: the
hub config passes hubkit's real loader (every plugin section validated by its model), and the compose file
is parsed and cross-checked. When the ``docker compose`` plugin exists, ``docker compose config`` runs too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hubkit.testing import require

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "docker"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((EXAMPLE / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    with open(EXAMPLE / "hubkit.toml", "rb") as f:
        return tomllib.load(f)


def test_hub_config_builds_a_hub(tmp_path: Path) -> None:
    """The real loader and Hub.create validate every section, including [spawner.docker] and the proxy's."""
    import asyncio

    from hubkit.config.loader import load_settings
    from hubkit.runtime.hub import Hub
    from hubkit_spawn_docker import DockerSpawner

    local = {"hub": {"data_dir": str(tmp_path), "db_url": f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite'}"}}
    settings = load_settings(EXAMPLE / "hubkit.toml", env={}, overrides=local)

    async def build() -> DockerSpawner:
        hub = await Hub.create(settings)
        try:
            assert isinstance(hub.spawner, DockerSpawner)
            return hub.spawner
        finally:
            await hub.engine.dispose()

    spawner = asyncio.run(build())
    assert spawner.config.network_mode == "network" and spawner.config.network_name == "hubkit-net"
    assert spawner.hub.hub_api_url == "http://hub:8081/hub/api"


def test_compose_wiring_matches_the_hub_config(compose: dict[str, Any], config: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"proxy", "hub", "singleuser-image"} <= set(services)
    docker_cfg = config["spawner"]["docker"]
    hub_port = config["hub"]["hub_port"]

    # One user-defined network, fixed name, the one the spawner attaches user containers to.
    (net,) = compose["networks"].values()
    assert docker_cfg["network_mode"] == "network" and net["name"] == docker_cfg["network_name"]
    assert services["hub"]["networks"] == services["proxy"]["networks"] == list(compose["networks"])

    # The proxy sends unknown paths to the hub service; the hub reaches the proxy API by service name.
    cmd = services["proxy"]["command"]
    assert f"--default-target=http://hub:{hub_port}" in cmd
    api_port = next(a.split("=", 1)[1] for a in cmd if a.startswith("--api-port="))
    assert config["proxy"]["hubkit-proxy"]["api_url"] == f"http://proxy:{api_port}"
    assert config["proxy"]["hubkit-proxy"]["should_start"] is False
    assert config["hub"]["hub_connect_url"] == f"http://hub:{hub_port}"
    # Both sides share the proxy secret, and compose refuses to start without it.
    for name in ("proxy", "hub"):
        assert ":?" in services[name]["environment"]["CONFIGPROXY_AUTH_TOKEN"]

    # The hub can drive the engine; its config file is mounted read-only where the image's command reads it.
    volumes = services["hub"]["volumes"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in volumes
    assert "./hubkit.toml:/etc/hubkit/hubkit.toml:ro" in volumes
    assert (EXAMPLE / "hubkit.toml").exists()

    # The image the spawner starts is the one compose builds, from a Dockerfile that exists.
    assert services["singleuser-image"]["image"] == docker_cfg["image"]
    for svc in ("proxy", "hub", "singleuser-image"):
        build = services[svc]["build"]
        assert (EXAMPLE / build["context"] / build["dockerfile"]).resolve().is_file()
    assert services["proxy"]["ports"] == ["127.0.0.1:8000:8000"]


def test_dockerfiles_install_from_this_checkout() -> None:
    hub = (EXAMPLE / "hub.Dockerfile").read_text()
    for pkg in ("hubkit-core", "hubkit-proxy", "hubkit-spawn-docker"):
        assert f"COPY packages/{pkg} " in hub and (REPO / "packages" / pkg / "pyproject.toml").exists()
    assert 'CMD ["hubkit", "-f", "/etc/hubkit/hubkit.toml"]' in hub
    single = (EXAMPLE / "singleuser.Dockerfile").read_text()
    assert "COPY packages/hubkit-singleuser " in single
    assert 'CMD ["hubkit-singleuser"]' in single and "USER 1000:1000" in single


def _compose_command() -> list[str] | None:
    """Compose v2 (``docker compose``) when installed, else Debian's ``docker-compose`` 1.29."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    cmd = _compose_command()
    require(cmd is not None, "neither `docker compose` nor docker-compose is installed (.ci/setup/docker.sh)")
    assert cmd is not None
    env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": "x" * 32}
    r = subprocess.run(
        [*cmd, "-f", str(EXAMPLE / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    # and the same tool rejects a broken copy, so the check can fail
    broken = tmp_path / "compose.yaml"
    broken.write_text((EXAMPLE / "compose.yaml").read_text().replace("services:", "services:\n  bad: {bogus_key: 1}", 1))
    bad = subprocess.run([*cmd, "-f", str(broken), "config", "--quiet"], capture_output=True, env=env, timeout=60)
    assert bad.returncode != 0
