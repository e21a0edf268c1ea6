"""Pure parts (no engine): names, options, config validation and the container plan."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hubkit.errors import InvalidOptions, SpawnFailed
from hubkit.interfaces import UserInfo
from hubkit.plugins.registry import BackendRegistry, HubInfo
from hubkit_spawn_docker import DockerSpawner, DockerSpawnerConfig, plugin
from hubkit_spawn_docker.containers import plan_container
from hubkit_spawn_docker.naming import escape, render
from hubkit_spawn_docker.options import options_form, parse_options, resolve_image
from hubkit_spawn_docker.pull import PullProgress
from hubkit_spawn_docker.testing import make_spec
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def cfg(**kw: Any) -> DockerSpawnerConfig:
    return DockerSpawnerConfig.model_validate(kw)


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_escape_is_injective_and_docker_safe(a: str, b: str) -> None:
    assert DOCKER_NAME.match("x" + escape(a))
    if a != b:
        assert escape(a) != escape(b)


@given(
    st.text(min_size=1, max_size=20),
    st.text(max_size=10),
    st.text(min_size=1, max_size=20),
    st.text(max_size=10),
)
def test_container_names_never_collide(u1: str, s1: str, u2: str, s2: str) -> None:
    t = DockerSpawnerConfig.model_fields["container_name_template"].default
    n1 = render(t, hub_id="h", user=u1, server=s1)
    n2 = render(t, hub_id="h", user=u2, server=s2)
    assert DOCKER_NAME.match(n1)
    assert (n1 == n2) == ((u1, s1) == (u2, s2))


def test_options_form_and_parse() -> None:
    c = cfg(allowed_images={"Python <3>": "img/py:1", "R": "img/r:2"})
    form = options_form(c)
    assert form is not None
    assert 'name="image"' in form.html and "Python &lt;3&gt;" in form.html and "<3>" not in form.html
    assert parse_options(c, {"image": ["R"]}) == {"image": "R"}
    assert parse_options(c, {"image": "R"}) == {"image": "R"}
    assert parse_options(c, {}) == {}
    assert resolve_image(c, {"image": "R"}) == "img/r:2"
    assert resolve_image(c, {}) == c.image
    with pytest.raises(InvalidOptions, match="not allowed; choose one of: Python <3>, R"):
        parse_options(c, {"image": "evil/miner"})
    with pytest.raises(InvalidOptions, match="unknown spawn option"):
        parse_options(c, {"image": "R", "privileged": "1"})
    with pytest.raises(InvalidOptions, match="exactly one value"):
        parse_options(c, {"image": ["R", "Python <3>"]})
    with pytest.raises(SpawnFailed):
        resolve_image(c, {"image": "img/r:2"})  # a raw reference is not a label


def test_no_form_without_allowed_images() -> None:
    c = cfg()
    assert options_form(c) is None
    with pytest.raises(InvalidOptions, match="does not let users choose"):
        parse_options(c, {"image": "anything"})


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"network_mode": "network"}, "needs network_name"),
        ({"network_mode": "bridge"}, "network_mode"),
        ({"mem_limit": "lots"}, "is not a size"),
        ({"container_name_template": "x-{usr}"}, "unknown placeholder"),
        ({"container_name_template": "fixed"}, "must contain {user}"),
        ({"mounts": [{"source": "rel/path", "target": "/d", "type": "bind"}]}, "absolute host path"),
        ({"mounts": [{"source": "v", "target": "relative"}]}, "target"),
        ({"allowed_images": {"": "x"}}, "must not be empty"),
        ({"imag": "typo"}, "imag"),
        ({"cpu_limit": 0}, "cpu_limit"),
    ],
)
def test_config_errors_name_the_key(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        cfg(**bad)


def test_plan_env_mounts_and_network_modes() -> None:
    spec = make_spec(
        "hub1",
        "ann",
        "lab",
        server_id=7,
        env={"JUPYTERHUB_ACTIVITY_URL": "http://127.0.0.1:8081/hub/api/users/ann/activity"},
    )
    c = cfg(
        network_mode="published",
        mounts=[{"source": "shared-{user}", "target": "/data"}],
        mem_limit="1g",
    )
    plan = plan_container(spec, c, "img:1", None)
    env = plan.create_kwargs["environment"]
    assert env["JUPYTERHUB_SERVICE_URL"] == "http://0.0.0.0:8888/user/ann/lab/"
    assert env["JUPYTERHUB_API_URL"] == "http://127.0.0.1:9/hub/api"  # the core's hub_connect_url decides it
    assert env["JUPYTERHUB_ACTIVITY_URL"] == "http://127.0.0.1:8081/hub/api/users/ann/activity"
    assert env["MEM_LIMIT"] == str(1024**3)
    assert plan.create_kwargs["ports"] == {"8888/tcp": ("127.0.0.1", None)}
    assert plan.create_kwargs["memswap_limit"] == "1g"
    assert [m["Source"] for m in plan.create_kwargs["mounts"]] == ["hubkit-hub1-home-ann", "shared-ann"]
    assert plan.container_name == "hubkit-hub1-ann--lab"
    assert plan.create_kwargs["command"] == list(spec.cmd)

    host = plan_container(spec, cfg(network_mode="host"), "img:1", None, host_port=45678)
    assert host.create_kwargs["network_mode"] == "host"
    assert (
        host.create_kwargs["environment"]["JUPYTERHUB_SERVICE_URL"] == "http://127.0.0.1:45678/user/ann/lab/"
    )

    net = plan_container(spec, cfg(network_mode="network", network_name="hubnet"), "img:1", None)
    assert net.create_kwargs["network"] == "hubnet"


def test_command_choices() -> None:
    from dataclasses import replace

    spec = replace(make_spec("h", "ann"), cmd=(), args=("--debug",))
    assert plan_container(spec, cfg(command="jupyterhub-singleuser"), "i", None).create_kwargs["command"] == [
        "jupyterhub-singleuser",
        "--debug",
    ]
    assert plan_container(spec, cfg(), "i", ["start-notebook.py"]).create_kwargs["command"] == [
        "start-notebook.py",
        "--debug",
    ]
    assert plan_container(replace(spec, args=()), cfg(), "i", ["x"]).create_kwargs["command"] is None


def test_pull_progress_counts_layers_and_bytes() -> None:
    p = PullProgress()
    p.update({"status": "Pulling from library/x", "id": "1"})
    p.update({"status": "Pulling fs layer", "id": "a"})
    p.update({"status": "Pulling fs layer", "id": "b"})
    p.update({"status": "Downloading", "id": "a", "progressDetail": {"current": 50, "total": 100}})
    p.update({"status": "Downloading", "id": "b", "progressDetail": {"current": 100, "total": 300}})
    assert (p.bytes_done, p.bytes_total) == (150, 400)
    assert p.update({"status": "Pull complete", "id": "a"}) is True
    ev = p.event("x:1")
    assert ev.detail["layers_done"] == 1 and ev.detail["layers_total"] == 2
    assert ev.detail["bytes_done"] == 200 and "1/2 layers" in ev.message


def test_plugin_registers_backend() -> None:
    reg: BackendRegistry[object] = BackendRegistry("spawner")
    plugin.hubkit_register_spawners(reg)
    entry = reg.get("docker")
    assert entry.config_model is DockerSpawnerConfig
    hub = HubInfo(hub_id="h", data_dir="/tmp", hub_api_url="", hub_url="", public_url="")
    backend = entry.factory(config=cfg(), hub=hub)
    assert isinstance(backend, DockerSpawner)
    assert backend.options_form(UserInfo(name="a")) is None


def test_host_ports_are_not_handed_out_twice() -> None:
    hub = HubInfo(hub_id="h", data_dir="/tmp", hub_api_url="", hub_url="", public_url="")
    backend = DockerSpawner(config=cfg(), hub=hub)
    ports = [backend._pick_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
