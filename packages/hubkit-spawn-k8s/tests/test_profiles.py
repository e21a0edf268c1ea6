"""Profiles: offered by group, validated on the server side, applied to the pod."""

from __future__ import annotations

from typing import Any

import pytest
from hubkit.errors import InvalidOptions
from hubkit.interfaces import UserInfo
from hubkit_spawn_k8s import objects, profiles
from hubkit_spawn_k8s.config import KubeSpawnerConfig
from hubkit_spawn_k8s.testing.helpers import make_spec

CFG = KubeSpawnerConfig.model_validate(
    {
        "image": "quay.io/jupyter/base-notebook:2026-11",
        "cpu_request": "100m",
        "profiles": [
            {"slug": "small", "display_name": "Small", "default": True, "cpu_limit": "1", "mem_limit": "2Gi",
             "images": ["quay.io/jupyter/scipy-notebook:2026-11"]},
            {"slug": "large", "display_name": "Large <8 CPU>", "cpu_limit": "4", "mem_limit": "16Gi",
             "max_cpu": "8", "max_mem": "32Gi", "mem_request": "8Gi", "node_selector": {"pool": "big"}},
            {"slug": "gpu", "display_name": "GPU", "groups": ["ml"], "image": "quay.io/jupyter/pytorch-notebook:cuda12",
             "extra_resource_limits": {"nvidia.com/gpu": "1"},
             "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
        ],
    }
)
ALICE = UserInfo("alice")
ML = UserInfo("mia", groups=("ml",))


def test_form_offers_only_allowed_profiles_escaped() -> None:
    form = profiles.options_form(CFG, ALICE)
    assert form is not None
    assert 'value="small" checked' in form.html and 'value="large"' in form.html
    assert 'value="gpu"' not in form.html
    assert "Large &lt;8 CPU&gt;" in form.html
    assert 'value="gpu"' in profiles.options_form(CFG, ML).html  # type: ignore[union-attr]
    assert profiles.options_form(KubeSpawnerConfig(), ALICE) is None


@pytest.mark.parametrize(
    ("user", "form", "message"),
    [
        (ALICE, {"profile": "gpu"}, "limited to groups ml"),
        (ALICE, {"profile": "huge"}, "unknown profile 'huge'"),
        (ALICE, {"profile": "large", "cpu": "9"}, "CPU 9 is more than profile 'Large <8 CPU>' allows (8)"),
        (ALICE, {"profile": "large", "memory": "33Gi"}, "more than profile"),
        (ALICE, {"profile": "large", "memory": "lots"}, "not a quantity"),
        (ALICE, {"profile": "large", "cpu": "0"}, "more than zero"),
        (ALICE, {"profile": "small", "cpu": "1"}, "does not let you choose the CPU"),
        (ALICE, {"profile": "small", "image": "evil/miner:latest"}, "is not offered by profile"),
        (ALICE, {"profile": "small", "privileged": "1"}, "unknown spawn option(s): privileged"),
        (ALICE, {"profile": ["small", "large"]}, "more than once"),
    ],
)
def test_parse_options_refuses(user: UserInfo, form: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidOptions) as info:
        profiles.parse_options(CFG, user, form)
    assert message in str(info.value)


def test_no_profiles_means_no_options() -> None:
    cfg = KubeSpawnerConfig()
    assert profiles.parse_options(cfg, ALICE, {}) == {}
    with pytest.raises(InvalidOptions):
        profiles.parse_options(cfg, ALICE, {"image": "x"})


def test_valid_choices_become_the_pod() -> None:
    opts = profiles.parse_options(CFG, ALICE, {"profile": "large", "cpu": "6", "memory": ["4Gi"]})
    assert opts == {"profile": "large", "cpu": "6", "memory": "4Gi"}
    plan = profiles.plan_for(CFG, ALICE, opts)
    assert (plan.cpu_limit, plan.mem_limit, plan.mem_request) == ("6", "4Gi", "4Gi")  # request capped by limit
    spec = make_spec("alice", user_options=opts)
    pod = objects.build_pod(CFG, spec, plan, objects.ServerNames.for_spec(CFG, spec))
    c = pod["spec"]["containers"][0]
    assert c["resources"] == {"requests": {"cpu": "100m", "memory": "4Gi"}, "limits": {"cpu": "6", "memory": "4Gi"}}
    assert pod["spec"]["nodeSelector"] == {"pool": "big"}
    assert pod["metadata"]["annotations"]["hubkit.io/profile"] == "large"

    gpu = profiles.plan_for(CFG, ML, {"profile": "gpu"})
    assert gpu.image == "quay.io/jupyter/pytorch-notebook:cuda12"
    assert gpu.extra_resource_limits == {"nvidia.com/gpu": "1"}
    default = profiles.plan_for(CFG, ALICE, {})
    assert default.profile == "small" and default.image == CFG.image
    alt = profiles.plan_for(CFG, ALICE, {"profile": "small", "image": "quay.io/jupyter/scipy-notebook:2026-11"})
    assert alt.image.endswith("scipy-notebook:2026-11")


def test_config_refuses_bad_quantities_and_duplicate_slugs() -> None:
    with pytest.raises(ValueError, match="quantities must match"):
        KubeSpawnerConfig.model_validate({"mem_limit": "2 gigs"})
    with pytest.raises(ValueError, match="unique"):
        KubeSpawnerConfig.model_validate({"profiles": [{"slug": "a", "display_name": "A"},
                                                       {"slug": "a", "display_name": "B"}]})
    with pytest.raises(ValueError, match="Extra inputs"):
        KubeSpawnerConfig.model_validate({"imagee": "typo"})


async def test_spawn_refuses_options_that_bypass_the_form(tmp_path: Any) -> None:
    from hubkit.errors import SpawnFailed
    from hubkit.plugins.registry import HubInfo
    from hubkit_spawn_k8s.spawner import KubeSpawner

    sp = KubeSpawner(CFG, HubInfo("h", ".", "", "", ""))  # start() checks before any API call
    with pytest.raises(SpawnFailed) as info:
        await sp.start(make_spec("alice", user_options={"profile": "gpu"}), None)  # type: ignore[arg-type]
    assert info.value.reason_code == "invalid-options"


pytestmark = pytest.mark.anyio
