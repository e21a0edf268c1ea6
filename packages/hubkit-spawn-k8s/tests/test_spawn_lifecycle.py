"""Spawn → progress → running → stop against the fake API server with the real client."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from hubkit.interfaces import Phase
from hubkit_spawn_k8s.spawner import KubeSpawner
from hubkit_spawn_k8s.testing import FakeKubernetes
from hubkit_spawn_k8s.testing.helpers import PROC, Ctx, hub_info, make_config, make_spec

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_spawn_progress_ready_stop(spawner: KubeSpawner, kube: FakeKubernetes) -> None:
    spec = make_spec("alice")
    pods_at_first_save: list[int] = []
    ctx = Ctx(on_save=lambda s: pods_at_first_save.append(len(kube.objects("pods"))))
    result = await spawner.start(spec, ctx)

    # state was saved before the pod existed
    assert ctx.states[0]["pod_name"] == "hubkit-alice"
    assert pods_at_first_save[0] == 0
    assert result.state["pod_uid"]
    msgs = ctx.messages()
    assert any(m.startswith("Scheduled on node fake-node-1") for m in msgs), msgs
    assert any(m.startswith('Pulling image "hubkit/tiny:1"') for m in msgs), msgs
    assert any(m.startswith('Pulled image "hubkit/tiny:1"') for m in msgs), msgs
    assert "Container started" in msgs
    phases = [e.phase for e in ctx.events]
    assert phases.index(Phase.SCHEDULING) < phases.index(Phase.PULLING) < phases.index(Phase.STARTING)
    progress = [e.progress for e in ctx.events if e.progress is not None]
    assert progress == sorted(progress)

    # the endpoint is the pod IP and a server answers there
    assert result.endpoint.url.startswith("http://127.100.")
    async with httpx.AsyncClient() as http:
        r = await http.get(result.endpoint.url + "/user/alice/api")
    assert r.status_code == 200
    assert await spawner.poll(spec, result.state) is None

    pod = kube.objects("pods")[0]
    assert pod["metadata"]["labels"]["hubkit.io/user"] == "alice"
    assert pod["metadata"]["annotations"]["hubkit.io/username"] == "alice"
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_SERVICE_URL"] == "http://0.0.0.0:18888/user/alice/"

    await spawner.stop(spec, result.state)
    assert kube.objects("pods") == []
    status = await spawner.poll(spec, result.state)
    assert status is not None and status.reason_code == "pod-gone"
    await spawner.stop(spec, result.state)  # idempotent


async def test_pvc_created_once_and_reused(spawner: KubeSpawner, kube: FakeKubernetes) -> None:
    spec = make_spec("bob")
    first = Ctx()
    r1 = await spawner.start(spec, first)
    pvcs = kube.objects("persistentvolumeclaims")
    assert [p["metadata"]["name"] for p in pvcs] == ["hubkit-home-bob"]
    uid = pvcs[0]["metadata"]["uid"]
    assert "Created storage claim hubkit-home-bob" in first.messages()
    await spawner.stop(spec, r1.state)
    assert kube.objects("persistentvolumeclaims")[0]["metadata"]["uid"] == uid  # kept after stop

    second = Ctx()
    r2 = await spawner.start(spec, second)
    assert "Using existing storage claim hubkit-home-bob" in second.messages()
    assert [p["metadata"]["uid"] for p in kube.objects("persistentvolumeclaims")] == [uid]
    # a named server of the same user mounts the same claim
    named = make_spec("bob", "nb1")
    r3 = await spawner.start(named, Ctx())
    claims = {v["persistentVolumeClaim"]["claimName"] for p in kube.objects("pods")
              for v in p["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"hubkit-home-bob"}
    assert len(kube.objects("pods")) == 2
    await spawner.stop(spec, r2.state, now=True)
    await spawner.stop(named, r3.state, now=True)
    assert kube.objects("pods") == []


async def test_real_process_server_and_log_tail(kube: FakeKubernetes, tmp_path: Path) -> None:
    sp = KubeSpawner(make_config(kube, tmp_path, image=PROC), hub_info())
    await sp.startup()
    try:
        spec = make_spec("carol")
        result = await sp.start(spec, Ctx())
        async with httpx.AsyncClient() as http:
            for _ in range(100):  # the process may need a moment to bind; readiness is the core's job
                try:
                    r = await http.get(result.endpoint.url + "/user/carol/api")
                    break
                except httpx.ConnectError:
                    import asyncio

                    await asyncio.sleep(0.1)
        assert r.status_code == 200 and r.json()["user"] == "carol"
        await sp.stop(spec, result.state)
        assert kube.objects("pods") == []
    finally:
        await sp.shutdown()


async def test_stale_pod_with_same_name_is_replaced(spawner: KubeSpawner, kube: FakeKubernetes) -> None:
    spec = make_spec("dave")
    r1 = await spawner.start(spec, Ctx())
    ctx = Ctx()
    r2 = await spawner.start(spec, ctx)  # hub lost track; the old pod must not block the new one
    assert "Removing an earlier pod named hubkit-dave" in ctx.messages()
    assert r2.state["pod_uid"] != r1.state["pod_uid"]
    assert [p["metadata"]["uid"] for p in kube.objects("pods")] == [r2.state["pod_uid"]]
    await spawner.stop(spec, r2.state, now=True)


async def test_delete_uses_grace_period(spawner: KubeSpawner, kube: FakeKubernetes) -> None:
    spec = make_spec("erin")
    result = await spawner.start(spec, Ctx())
    spawner.cfg.delete_grace_period = 2
    seen: list[str] = []
    spawner.tracker.mailboxes.setdefault("hubkit-erin", [])
    box = spawner.tracker.open("hubkit-erin")
    await spawner.stop(spec, result.state)
    while not box.queue.empty():
        _, etype, obj = box.queue.get_nowait()
        if obj["metadata"].get("deletionTimestamp"):
            seen.append(f"{etype}:{obj['metadata']['deletionGracePeriodSeconds']}")
        if etype == "DELETED":
            seen.append("DELETED")
    spawner.tracker.close(box)
    assert seen[0] == "MODIFIED:2" and seen[-1] == "DELETED", seen


async def test_per_server_service(kube: FakeKubernetes, tmp_path: Path) -> None:
    sp = KubeSpawner(make_config(kube, tmp_path, service=True), hub_info())
    await sp.startup()
    try:
        spec = make_spec("frank", "nb1")
        result = await sp.start(spec, Ctx())
        (svc,) = kube.objects("services")
        assert svc["metadata"]["name"] == "hubkit-frank--nb1"
        assert svc["spec"]["selector"]["hubkit.io/server-name"] == "nb1"
        assert result.endpoint.url == "http://hubkit-frank--nb1.default.svc:18888"
        await sp.stop(spec, result.state)
        assert kube.objects("services") == [] and kube.objects("pods") == []
    finally:
        await sp.shutdown()
