"""Shared watches (counted by the API server's own audit log), an API server restart in the middle of a spawn,
re-adoption after a hub restart, and the orphan sweep (pods and token Secrets)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from hubkit.interfaces import KnownServer
from hubkit_spawn_k8s.spawner import KubeSpawner
from hubkit_spawn_k8s.testing import ControlPlane
from hubkit_spawn_k8s.testing.helpers import Ctx, Namespace, hub_info, make_config, make_spec, slow_server

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]


async def _until(cond, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.2)


def _hub_requests(cluster: ControlPlane, ns: Namespace) -> Counter[tuple[str, str]]:
    user = f"system:serviceaccount:{ns.name}:hubkit-hub"
    out: Counter[tuple[str, str]] = Counter()
    for ev in cluster.audit_events(user):
        # a watch still open has only its ResponseStarted record; other calls count once complete
        if ev.get("stage") != ("ResponseStarted" if ev["verb"] == "watch" else "ResponseComplete"):
            continue
        ref = ev.get("objectRef") or {}
        res = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        out[(ev["verb"], res)] += 1
    return out


async def test_one_watch_per_kind_shared_by_all_servers(ns: Namespace, image: str, cluster: ControlPlane) -> None:
    sp = KubeSpawner(make_config(ns, image, watch_timeout=600, storage={"enabled": False}), hub_info())
    await sp.startup()
    try:
        specs = [make_spec(f"user{i}") for i in range(8)]
        results = await asyncio.gather(*(sp.start(s, Ctx()) for s in specs))
        assert len({r.endpoint.url for r in results}) == 8
        for s, r in zip(specs, results, strict=True):
            assert await sp.poll(s, r.state) is None
        await asyncio.gather(*(sp.stop(s, r.state, now=True) for s, r in zip(specs, results, strict=True)))
        assert ns.names("pods") == []
    finally:
        await sp.shutdown()
    # the API server's record of this hub's account (a watch is written to the audit log once it ends): one
    # watch per kind for all 8 servers, no GET per pod
    await _until(lambda: _hub_requests(cluster, ns)[("watch", "events")] >= 1, 30)
    calls = _hub_requests(cluster, ns)
    assert calls[("watch", "pods")] == 1, calls
    assert calls[("watch", "events")] == 1, calls
    assert calls[("get", "pods")] == 0, calls
    assert calls[("create", "pods")] == 8 and calls[("delete", "pods")] == 8, calls


async def test_api_server_restart_mid_spawn_is_survived(spawner: KubeSpawner, ns: Namespace,
                                                        cluster: ControlPlane) -> None:
    spawner.cfg.cmd = slow_server(8)  # the pod stays "starting" for 8 s
    spec = make_spec("alice")
    ctx = Ctx()
    task = asyncio.ensure_future(spawner.start(spec, ctx))
    await _until(lambda: ns.names("pods") == ["hubkit-alice"])
    relists = spawner.pods.relists  # type: ignore[union-attr]
    cluster.stop_apiserver()  # kill -9: every watch breaks, every call is refused
    await asyncio.sleep(2)
    assert not task.done()
    cluster.start_apiserver()  # same port, same etcd; a fresh watch cache
    result = await asyncio.wait_for(task, 120)
    assert result.endpoint.url.startswith("http://127.0.0.1:")
    assert await spawner.poll(spec, result.state) is None
    # the watches resumed (re-listing where the new API server no longer had their resourceVersion)
    assert spawner.pods.watch_requests >= 2  # type: ignore[union-attr]
    print("relists across the restart:", spawner.pods.relists - relists)  # type: ignore[union-attr]
    await spawner.stop(spec, result.state, now=True)
    assert ns.names("pods") == []


async def test_hub_restart_readopts_running_pod(ns: Namespace, image: str) -> None:
    cfg = make_config(ns, image)
    first = KubeSpawner(cfg, hub_info())
    await first.startup()
    spec = make_spec("alice")
    result = await first.start(spec, Ctx())
    await first.shutdown()  # the hub goes away; the pod keeps running
    assert ns.names("pods") == ["hubkit-alice"]

    second = KubeSpawner(cfg, hub_info())
    await second.startup()
    try:
        assert await second.poll(spec, result.state) is None
        report = await second.reconcile([KnownServer(spec, result.state)], remove_orphans=True)
        assert report.adopted == ("alice/",) and report.removed == () and report.missing == ()
        assert ns.names("pods") == ["hubkit-alice"]
        assert ns.objects("secrets", "hubkit.io/hub=testhub")  # its token stays with it
        await second.stop(spec, result.state, now=True)
        assert ns.names("pods") == []
        assert (await second.poll(spec, result.state)).reason_code == "pod-gone"  # type: ignore[union-attr]
    finally:
        await second.shutdown()


async def test_reconcile_reports_then_removes_orphans(spawner: KubeSpawner, ns: Namespace,
                                                      cluster: ControlPlane, image: str) -> None:
    spec = make_spec("alice")
    known = await spawner.start(spec, Ctx())
    orphan_spec = make_spec("mallory")
    orphan = await spawner.start(orphan_spec, Ctx())  # the hub will "forget" this one
    # a pod of another hub and an unlabelled pod must never be touched (they wait for a node that never comes)
    nowhere = {"nodeSelector": {"hubkit.io/pool": "none"}, "containers": [{"name": "c", "image": image}]}
    cluster.ok("POST", f"/api/v1/namespaces/{ns.name}/pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "other", "labels": {"hubkit.io/hub": "otherhub", "hubkit.io/component": "singleuser-server"}},
        "spec": nowhere})
    cluster.ok("POST", f"/api/v1/namespaces/{ns.name}/pods",
               {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain"}, "spec": nowhere})
    # a token Secret whose pod was never created (a hub killed between the two) is an orphan too
    cluster.ok("POST", f"/api/v1/namespaces/{ns.name}/secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "hubkit-zed-token", "labels": {"hubkit.io/hub": "testhub", "hubkit.io/component": "singleuser-server"},
        "annotations": {"hubkit.io/username": "zed", "hubkit.io/servername": ""}}, "stringData": {"x": "y"}})
    ghost = make_spec("ghost")
    known_servers = [KnownServer(spec, known.state), KnownServer(ghost, {"pod_name": "hubkit-ghost"})]

    report = await spawner.reconcile(known_servers, remove_orphans=False)
    assert report.adopted == ("alice/",)
    assert sorted(report.reported) == sorted([f"{ns.name}/hubkit-mallory", f"secret {ns.name}/hubkit-mallory-token",
                                              f"secret {ns.name}/hubkit-zed-token"])
    assert report.removed == ()
    assert report.missing == ("ghost/",)
    assert len(ns.objects("pods")) == 4

    report = await spawner.reconcile(known_servers, remove_orphans=True)
    # mallory's token goes with its pod (the garbage collector may be first to it); zed's had no pod
    assert {f"{ns.name}/hubkit-mallory", f"secret {ns.name}/hubkit-zed-token"} <= set(report.removed), report
    assert set(report.removed) <= {f"{ns.name}/hubkit-mallory", f"secret {ns.name}/hubkit-zed-token",
                                   f"secret {ns.name}/hubkit-mallory-token"}, report
    assert ns.names("pods") == ["hubkit-alice", "other", "plain"]
    await _until(lambda: [s["metadata"]["name"] for s in ns.objects("secrets", "hubkit.io/hub=testhub")]
                 == ["hubkit-alice-token"])
    assert (await spawner.poll(orphan_spec, orphan.state)).reason_code == "pod-gone"  # type: ignore[union-attr]
    await spawner.stop(spec, known.state, now=True)
