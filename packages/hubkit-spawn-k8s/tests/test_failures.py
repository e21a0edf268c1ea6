"""Each failure mode ends the spawn with a plain-language reason and leaves no pod behind."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hubkit.errors import SpawnFailed, SpawnTimeout
from hubkit_spawn_k8s.spawner import KubeSpawner
from hubkit_spawn_k8s.testing import FakeKubernetes
from hubkit_spawn_k8s.testing.helpers import CRASH, OOM, Ctx, hub_info, make_config, make_spec

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unschedulable-memory", {"mem_limit": "64Ti"}, "unschedulable",
     "No node in the cluster can run this server: 0/1 nodes are available: 1 Insufficient memory"),
    ("unschedulable-selector", {"node_selector": {"gpu": "a100"}}, "unschedulable",
     "1 node(s) didn't match Pod's node affinity/selector"),
    ("bad-image", {"image": "quay.io/nobody/missing:0"}, "image-pull-failed",
     'The image "quay.io/nobody/missing:0" could not be pulled (ErrImagePull)'),
    ("crash", {"image": CRASH}, "crash-loop", "keeps crashing right after it starts (CrashLoopBackOff, exit code 3)"),
    ("oom", {"image": OOM, "mem_limit": "256Mi"}, "oom-killed", "ran out of memory (limit: 256Mi)"),
]


@pytest.mark.parametrize(("label", "overrides", "code", "text"), CASES, ids=[c[0] for c in CASES])
async def test_failure_ends_spawn_without_leftover_pod(
    kube: FakeKubernetes, tmp_path: Path, label: str, overrides: dict[str, Any], code: str, text: str
) -> None:
    sp = KubeSpawner(make_config(kube, tmp_path, **overrides), hub_info())
    await sp.startup()
    try:
        ctx = Ctx()
        with pytest.raises(SpawnFailed) as info:
            await sp.start(make_spec("alice"), ctx)
        assert info.value.reason_code == code
        assert text in str(info.value)
        assert kube.objects("pods") == []
        assert kube.objects("persistentvolumeclaims")  # storage is the user's; a failed spawn keeps it
        if label.startswith("unschedulable"):
            assert any(m.startswith("Waiting for a node: 0/1 nodes are available") for m in ctx.messages())
        if label == "bad-image":
            assert 'Pulling image "quay.io/nobody/missing:0"' in ctx.messages()
    finally:
        await sp.shutdown()


async def test_start_timeout_removes_pod(kube: FakeKubernetes, tmp_path: Path) -> None:
    sp = KubeSpawner(make_config(kube, tmp_path, start_timeout=1.0), hub_info())
    await sp.startup()
    kube.call(lambda: kube.cluster.kubelet.extra_delay.__setitem__("hubkit/tiny:1", 5.0))  # a slow pull
    try:
        with pytest.raises(SpawnTimeout) as info:
            await sp.start(make_spec("slow"), Ctx())
        assert info.value.reason_code == "timeout-start"
        assert "was not running after 1s" in str(info.value)
        assert kube.objects("pods") == []
    finally:
        await sp.shutdown()


async def test_invalid_object_is_refused_with_reason(kube: FakeKubernetes, tmp_path: Path) -> None:
    # the API server's 422 (a label value Kubernetes does not accept)
    sp = KubeSpawner(make_config(kube, tmp_path, extra_labels={"team": "data science!"}), hub_info())
    await sp.startup()
    try:
        with pytest.raises(SpawnFailed) as info:
            await sp.start(make_spec("alice"), Ctx())
        assert info.value.reason_code == "k8s-invalid"
        assert "The cluster refused PersistentVolumeClaim hubkit-home-alice as invalid" in str(info.value)
        assert "data science!" in str(info.value)
        assert kube.objects("pods") == []
    finally:
        await sp.shutdown()


async def test_client_side_refusal_is_reported(kube: FakeKubernetes, tmp_path: Path) -> None:
    # the client's own model validation (an unknown field in an extra volume)
    bad_volume = [{"name": "scratch", "emptyDir": {}, "notAField": 1}]
    sp = KubeSpawner(make_config(kube, tmp_path, extra_volumes=bad_volume), hub_info())
    await sp.startup()
    try:
        with pytest.raises(SpawnFailed) as info:
            await sp.start(make_spec("alice"), Ctx())
        assert info.value.reason_code == "k8s-invalid"
        assert "refused Pod hubkit-alice as invalid" in str(info.value) and "notAField" in str(info.value)
        assert kube.objects("pods") == []
    finally:
        await sp.shutdown()


async def test_unknown_storage_class_waits_then_reports(kube: FakeKubernetes, tmp_path: Path) -> None:
    sp = KubeSpawner(make_config(kube, tmp_path, storage={"storage_class": "gold"}), hub_info())
    await sp.startup()
    try:
        with pytest.raises(SpawnFailed) as info:
            await sp.start(make_spec("alice"), Ctx())
        assert "unbound immediate PersistentVolumeClaims" in str(info.value)
        assert kube.objects("pods") == []
    finally:
        await sp.shutdown()


async def test_unschedulable_grace_waits_for_a_new_node(kube: FakeKubernetes, tmp_path: Path) -> None:
    """With a grace period (cluster autoscaler), a node that appears in time rescues the spawn."""
    from hubkit_spawn_k8s.testing import FakeNode

    sp = KubeSpawner(make_config(kube, tmp_path, node_selector={"pool": "big"}, unschedulable_grace=10), hub_info())
    await sp.startup()
    try:
        ctx = Ctx()
        task = asyncio.ensure_future(sp.start(make_spec("alice"), ctx))
        for _ in range(400):  # bounded: 20 s
            if any(m.startswith("Waiting for a node") for m in ctx.messages()):
                break
            await asyncio.sleep(0.05)
        assert not task.done()
        kube.set_nodes([FakeNode("fake-node-1"), FakeNode("big-1", labels={"pool": "big"})])  # the autoscaler
        result = await asyncio.wait_for(task, 20)
        assert any(m == "Scheduled on node big-1" for m in ctx.messages()), ctx.messages()
        await sp.stop(make_spec("alice"), result.state, now=True)

        # and when no node comes, the grace period ends the spawn with the scheduler's reason
        sp.cfg.unschedulable_grace = 0.5
        sp.cfg.node_selector = {"pool": "none"}
        with pytest.raises(SpawnFailed) as info:
            await asyncio.wait_for(sp.start(make_spec("bob"), Ctx()), 20)
        assert info.value.reason_code == "unschedulable"
        assert kube.objects("pods") == []
    finally:
        await sp.shutdown()


async def test_startup_explains_an_unreachable_api(kube: FakeKubernetes, tmp_path: Path) -> None:
    from hubkit.errors import ConfigError

    good = Path(kube.write_kubeconfig(tmp_path / "k"))
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(good.read_text().replace(kube.url, "http://127.0.0.1:9"))  # noqa: ASYNC240
    sp = KubeSpawner(make_config(kube, tmp_path, kubeconfig=str(dead)), hub_info())
    with pytest.raises(ConfigError) as info:
        await asyncio.wait_for(sp.startup(), 60)
    assert "cannot reach the Kubernetes API at http://127.0.0.1:9" in str(info.value)


async def test_missing_namespace_fails_the_spawn_with_the_api_message(kube: FakeKubernetes, tmp_path: Path) -> None:
    # listing in a missing namespace is not an error for the API (empty list); creating is
    sp = KubeSpawner(make_config(kube, tmp_path, namespace="nowhere"), hub_info())
    await sp.startup()
    try:
        with pytest.raises(SpawnFailed) as info:
            await sp.start(make_spec("alice"), Ctx())
        assert 'namespaces "nowhere" not found' in str(info.value)
        assert info.value.reason_code == "k8s-api-error"
    finally:
        await sp.shutdown()
