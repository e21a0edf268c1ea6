"""Each failure mode, produced by the real scheduler, kubelet and Docker engine, ends the spawn with a
plain-language reason and leaves no pod (nor token Secret) behind."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hubkit.errors import ConfigError, SpawnFailed, SpawnTimeout
from hubkit_spawn_k8s.spawner import KubeSpawner
from hubkit_spawn_k8s.testing import ControlPlane
from hubkit_spawn_k8s.testing.helpers import (
    CRASH,
    MISSING_IMAGE,
    OOM,
    Ctx,
    Namespace,
    hub_info,
    make_config,
    make_spec,
    slow_server,
)
from hubkit_spawn_k8s.testing.nodeagent import node_agent_process

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240)]

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unschedulable-memory", {"mem_limit": "64Ti"}, "unschedulable",
     "No node in the cluster can run this server: 0/1 nodes are available: 1 Insufficient memory"),
    ("unschedulable-selector", {"node_selector": {"gpu": "a100"}}, "unschedulable",
     "1 node(s) didn't match Pod's node affinity"),
    ("bad-image", {"image": MISSING_IMAGE}, "image-pull-failed",
     f'The image "{MISSING_IMAGE}" could not be pulled'),
    ("crash", {"cmd": CRASH}, "crash-loop", "keeps crashing right after it starts (CrashLoopBackOff, exit code 3)"),
    ("oom", {"cmd": OOM, "mem_limit": "64Mi"}, "oom-killed", "ran out of memory (limit: 64Mi)"),
]


@pytest.mark.parametrize(("label", "overrides", "code", "text"), CASES, ids=[c[0] for c in CASES])
async def test_failure_ends_spawn_without_leftovers(
    ns: Namespace, image: str, label: str, overrides: dict[str, Any], code: str, text: str
) -> None:
    sp = KubeSpawner(make_config(ns, overrides.pop("image", image), **overrides), hub_info())
    await sp.startup()
    try:
        ctx = Ctx()
        with pytest.raises(SpawnFailed) as info:
            await sp.start(make_spec("alice"), ctx)
        assert info.value.reason_code == code, info.value
        assert text in str(info.value)
        assert ns.names("pods") == []
        assert ns.objects("secrets", "hubkit.io/hub=testhub") == []
        assert ns.names("persistentvolumeclaims") == ["hubkit-home-alice"]  # the user's; a failed spawn keeps it
        if label.startswith("unschedulable"):
            assert any(m.startswith("Waiting for a node: 0/1 nodes are available") for m in ctx.messages())
        if label == "bad-image":
            assert f'Pulling image "{MISSING_IMAGE}"' in ctx.messages()
    finally:
        await sp.shutdown()


async def test_start_timeout_removes_pod(ns: Namespace, image: str) -> None:
    sp = KubeSpawner(make_config(ns, image, cmd=slow_server(60), start_timeout=3.0), hub_info())
    await sp.startup()
    try:
        with pytest.raises(SpawnTimeout) as info:
            await sp.start(make_spec("slow"), Ctx())
        assert info.value.reason_code == "timeout-start"
        assert "was not running after 3s" in str(info.value)
        assert ns.names("pods") == []
    finally:
        await sp.shutdown()


async def test_invalid_object_is_refused_by_the_api_server(ns: Namespace, image: str) -> None:
    sp = KubeSpawner(make_config(ns, image, extra_labels={"team": "data science!"}), hub_info())
    await sp.startup()
    try:
        with pytest.raises(SpawnFailed) as info:
            await sp.start(make_spec("alice"), Ctx())
        assert info.value.reason_code == "k8s-invalid"
        assert "The cluster refused PersistentVolumeClaim hubkit-home-alice as invalid" in str(info.value)
        assert "data science!" in str(info.value)
        assert ns.names("pods") == []
    finally:
        await sp.shutdown()


async def test_client_side_refusal_is_reported(ns: Namespace, image: str) -> None:
    bad_volume = [{"name": "scratch", "emptyDir": {}, "notAField": 1}]
    sp = KubeSpawner(make_config(ns, image, extra_volumes=bad_volume), hub_info())
    await sp.startup()
    try:
        with pytest.raises(SpawnFailed) as info:
            await sp.start(make_spec("alice"), Ctx())
        assert info.value.reason_code == "k8s-invalid"
        assert "refused Pod hubkit-alice as invalid" in str(info.value) and "notAField" in str(info.value)
        assert ns.names("pods") == []
    finally:
        await sp.shutdown()


async def test_unknown_storage_class_waits_then_reports(ns: Namespace, image: str) -> None:
    sp = KubeSpawner(make_config(ns, image, storage={"storage_class": "gold", "bind_grace": 3}), hub_info())
    await sp.startup()
    try:
        with pytest.raises(SpawnFailed) as info:
            await sp.start(make_spec("alice"), Ctx())
        assert "unbound immediate PersistentVolumeClaims" in str(info.value)
        assert ns.names("pods") == []
    finally:
        await sp.shutdown()


async def test_unschedulable_grace_waits_for_a_new_node(ns: Namespace, image: str, cluster: ControlPlane,
                                                       tmp_path: Path) -> None:
    """With a grace period (cluster autoscaler), a node that appears in time rescues the spawn. The new node
    is the node agent's (a stand-in: the real kubelet is the one node this machine has)."""
    sp = KubeSpawner(make_config(ns, image, node_selector={"hubkit.io/node-agent": "true"}, unschedulable_grace=60,
                                 storage={"enabled": False}), hub_info())
    await sp.startup()
    try:
        ctx = Ctx()
        task = asyncio.ensure_future(sp.start(make_spec("alice"), ctx))
        for _ in range(400):  # bounded: 40 s
            if any(m.startswith("Waiting for a node") for m in ctx.messages()):
                break
            await asyncio.sleep(0.1)
        assert not task.done()
        prefix = f"scaled-{ns.name}"
        with node_agent_process(cluster.kubeconfig, nodes=1, prefix=prefix, log=tmp_path / "agent.log"):
            result = await asyncio.wait_for(task, 60)
            assert f"Scheduled on node {prefix}-0" in ctx.messages(), ctx.messages()
            await sp.stop(make_spec("alice"), result.state, now=True)
        cluster.request("DELETE", f"/api/v1/nodes/{prefix}-0")

        # and when no node comes, the grace period ends the spawn with the scheduler's reason
        sp.cfg.unschedulable_grace = 0.5
        sp.cfg.node_selector = {"pool": "none"}
        with pytest.raises(SpawnFailed) as info:
            await asyncio.wait_for(sp.start(make_spec("bob"), Ctx()), 60)
        assert info.value.reason_code == "unschedulable"
        assert ns.names("pods") == []
    finally:
        await sp.shutdown()


async def test_startup_explains_an_unreachable_api(ns: Namespace, image: str, tmp_path: Path) -> None:
    dead = tmp_path / "dead.kubeconfig"
    text = ns.kubeconfig.read_text()
    dead.write_text(text.replace(ns.cluster.url, "https://127.0.0.1:9"))
    sp = KubeSpawner(make_config(ns, image, kubeconfig=str(dead), api_retry_seconds=1), hub_info())
    with pytest.raises(ConfigError) as info:
        await asyncio.wait_for(sp.startup(), 60)
    assert "cannot reach the Kubernetes API at https://127.0.0.1:9" in str(info.value)


async def test_missing_namespace_fails_the_spawn_with_the_api_message(cluster: ControlPlane, image: str,
                                                                     ns: Namespace) -> None:
    # an admin account: listing in a missing namespace is not an error for the API (empty list); creating is
    sp = KubeSpawner(make_config(ns, image, namespace="nowhere", kubeconfig=str(cluster.kubeconfig)), hub_info())
    await sp.startup()
    try:
        with pytest.raises(SpawnFailed) as info:
            await sp.start(make_spec("alice"), Ctx())
        assert 'namespaces "nowhere" not found' in str(info.value)
        assert info.value.reason_code == "k8s-api-error"
    finally:
        await sp.shutdown()
