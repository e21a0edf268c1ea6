"""Shared watches: one per kind, resumed after a gap, re-listed on 410 Gone; re-adoption and orphans."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from hubkit.interfaces import KnownServer
from hubkit_spawn_k8s.spawner import KubeSpawner
from hubkit_spawn_k8s.testing import FakeKubernetes
from hubkit_spawn_k8s.testing.helpers import TINY, Ctx, hub_info, make_config, make_spec

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def _until(cond, seconds: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_410_gone_relists_without_losing_pod_state(spawner: KubeSpawner, kube: FakeKubernetes) -> None:
    kube.call(lambda: kube.cluster.kubelet.extra_delay.__setitem__(TINY, 1.0))  # the pull takes a second
    spec = make_spec("alice")
    task = asyncio.ensure_future(spawner.start(spec, Ctx()))
    await _until(lambda: any(p["metadata"]["name"] == "hubkit-alice" for p in kube.objects("pods")))
    # a partition: every watch closes, and while the hub cannot watch the pod becomes ready
    kube.pause_watches()
    await _until(lambda: kube.objects("pods")[0]["status"].get("phase") == "Running"
                 and kube.objects("pods")[0]["status"]["containerStatuses"][0]["ready"])
    assert not task.done()
    kube.compact()  # ... and the history the hub would resume from is gone
    relists = spawner.pods.relists  # type: ignore[union-attr]
    kube.resume_watches()
    result = await asyncio.wait_for(task, 15)
    assert spawner.pods.relists > relists  # type: ignore[union-attr]
    assert result.endpoint.url.startswith("http://127.100.")
    assert spawner.pods.cache["hubkit-alice"]["status"]["phase"] == "Running"  # type: ignore[union-attr]
    # a pod deleted behind the hub's back during another 410 gap still shows up as gone
    kube.pause_watches()
    kube.call(lambda: kube.cluster.delete("pods", "default", "hubkit-alice", 0))
    kube.compact()
    kube.resume_watches()
    await _until(lambda: "hubkit-alice" not in spawner.pods.cache)  # type: ignore[union-attr]
    status = await spawner.poll(spec, result.state)
    assert status is not None and status.reason_code == "pod-gone"


async def test_one_watch_per_kind_shared_by_all_servers(spawner: KubeSpawner, kube: FakeKubernetes) -> None:
    specs = [make_spec(f"user{i}") for i in range(20)]
    results = await asyncio.gather(*(spawner.start(s, Ctx()) for s in specs))
    assert len({r.endpoint.url for r in results}) == 20
    for kind in ("pods", "events"):
        stats = kube.watch_stats(kind)
        assert stats.active == 1, (kind, stats)
        assert stats.max_active == 1, (kind, stats)
    await asyncio.gather(*(spawner.stop(s, r.state, now=True) for s, r in zip(specs, results, strict=True)))
    assert kube.objects("pods") == []


async def test_hub_restart_readopts_running_pod(kube: FakeKubernetes, tmp_path: Path) -> None:
    cfg = make_config(kube, tmp_path)
    first = KubeSpawner(cfg, hub_info())
    await first.startup()
    spec = make_spec("alice")
    result = await first.start(spec, Ctx())
    await first.shutdown()  # the hub goes away; the pod keeps running
    assert len(kube.objects("pods")) == 1

    second = KubeSpawner(cfg, hub_info())
    await second.startup()
    try:
        assert await second.poll(spec, result.state) is None
        report = await second.reconcile([KnownServer(spec, result.state)], remove_orphans=True)
        assert report.adopted == ("alice/",) and report.removed == () and report.missing == ()
        assert len(kube.objects("pods")) == 1
        await second.stop(spec, result.state)
        assert kube.objects("pods") == []
        assert (await second.poll(spec, result.state)).reason_code == "pod-gone"  # type: ignore[union-attr]
    finally:
        await second.shutdown()


async def test_reconcile_reports_then_removes_orphans(spawner: KubeSpawner, kube: FakeKubernetes) -> None:
    spec = make_spec("alice")
    known = await spawner.start(spec, Ctx())
    orphan_spec = make_spec("mallory")
    orphan = await spawner.start(orphan_spec, Ctx())  # the hub will "forget" this one
    # a pod of another hub and an unlabelled pod must never be touched
    other_hub = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "other", "labels": {
        "hubkit.io/hub": "otherhub", "hubkit.io/component": "singleuser-server"}},
        "spec": {"containers": [{"name": "c", "image": TINY}]}}
    kube.create("pods", "default", other_hub)
    kube.create("pods", "default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain"},
                                    "spec": {"containers": [{"name": "c", "image": TINY}]}})
    ghost = make_spec("ghost")
    known_servers = [KnownServer(spec, known.state), KnownServer(ghost, {"pod_name": "hubkit-ghost"})]

    report = await spawner.reconcile(known_servers, remove_orphans=False)
    assert report.adopted == ("alice/",)
    assert report.reported == ("default/hubkit-mallory",)
    assert report.removed == ()
    assert report.missing == ("ghost/",)
    assert len(kube.objects("pods")) == 4

    report = await spawner.reconcile(known_servers, remove_orphans=True)
    assert report.removed == ("default/hubkit-mallory",)
    names = sorted(p["metadata"]["name"] for p in kube.objects("pods"))
    assert names == ["hubkit-alice", "other", "plain"]
    assert (await spawner.poll(orphan_spec, orphan.state)).reason_code == "pod-gone"  # type: ignore[union-attr]
    await spawner.stop(spec, known.state, now=True)
