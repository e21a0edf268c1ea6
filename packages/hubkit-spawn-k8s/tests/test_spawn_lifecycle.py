"""Spawn → progress → running → stop with the real client, API server, scheduler and kubelet."""

from __future__ import annotations

import asyncio
import hashlib
import time

import httpx
import pytest
from hubkit.interfaces import Phase, UserInfo
from hubkit.plugins.hooks import Hooks
from hubkit.plugins.manager import build_plugin_manager
from hubkit_spawn_k8s.spawner import KubeSpawner
from hubkit_spawn_k8s.testing import ControlPlane
from hubkit_spawn_k8s.testing.controlplane import NODE_NAME
from hubkit_spawn_k8s.testing.helpers import Ctx, Namespace, hub_info, make_config, make_spec

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240)]


async def _get(url: str, seconds: float = 30) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        for _ in range(int(seconds / 0.1)):  # bounded; the core's readiness check does this for the hub
            try:
                return await http.get(url)
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def _hub_hooks(sp: KubeSpawner) -> Hooks:
    """The hooks of a hub that built ``sp``: its instance is a plugin of that hub's manager."""
    pm = build_plugin_manager(allow=["kubernetes"])
    assert pm.register_instance(sp, "spawner:kubernetes", "hubkit-spawn-k8s")
    return Hooks(pm)


async def _until(cond, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.2)


async def test_spawn_progress_ready_stop(spawner: KubeSpawner, ns: Namespace) -> None:
    spec = make_spec("alice")
    pods_at_first_save: list[int] = []
    ctx = Ctx(on_save=lambda s: pods_at_first_save.append(len(ns.objects("pods"))))
    result = await spawner.start(spec, ctx)

    # identity was saved before anything existed
    assert ctx.states[0]["pod_name"] == "hubkit-alice" and ctx.states[0]["secret_name"] == "hubkit-alice-token"
    assert pods_at_first_save[0] == 0
    assert result.state["pod_uid"]
    msgs = ctx.messages()
    assert f"Scheduled on node {NODE_NAME}" in msgs, msgs
    assert any(m.startswith("Container image") or m.startswith("Pulled") for m in msgs), msgs
    assert "Container started" in msgs, msgs
    phases = [e.phase for e in ctx.events]
    assert phases.index(Phase.SCHEDULING) < phases.index(Phase.STARTING)
    progress = [e.progress for e in ctx.events if e.progress is not None]
    assert progress == sorted(progress)

    # the server runs in a container of the kubelet, on the node's loopback at the port the hub picked
    assert result.endpoint.url == f"http://127.0.0.1:{result.state['port']}"
    r = await _get(result.endpoint.url + "/user/alice/api")
    assert r.status_code == 200 and r.json()["user"] == "alice"
    # the token reached the container's env through the Secret, and is not in the pod spec
    assert r.json()["token_sha256"] == hashlib.sha256(spec.api_token.encode()).hexdigest()
    (pod,) = ns.objects("pods")
    assert spec.api_token not in str(pod)
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hubkit-alice-token",
                                                                        "key": "JUPYTERHUB_API_TOKEN"}
    (secret,) = ns.objects("secrets", "hubkit.io/hub=testhub")
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "hubkit-alice", "uid": result.state["pod_uid"]}]
    assert pod["metadata"]["labels"]["hubkit.io/user"] == "alice"
    assert pod["spec"]["nodeName"] == NODE_NAME
    assert await spawner.poll(spec, result.state) is None
    assert any("tiny server on 127.0.0.1" in line for line in await spawner.log_tail(spec, result.state))

    await spawner.stop(spec, result.state, now=True)  # graceful stops: test_delete_uses_grace_period
    assert ns.names("pods") == []
    assert ns.objects("secrets", "hubkit.io/hub=testhub") == []  # the token goes with its server
    status = await spawner.poll(spec, result.state)
    assert status is not None and status.reason_code == "pod-gone"
    await spawner.stop(spec, result.state)  # idempotent


async def test_secret_goes_with_its_pod_whoever_deletes_it(spawner: KubeSpawner, ns: Namespace,
                                                          cluster: ControlPlane) -> None:
    spec = make_spec("gina")
    result = await spawner.start(spec, Ctx())
    assert ns.objects("secrets", "hubkit.io/hub=testhub")
    # an operator deletes the pod with kubectl: the garbage collector removes the token with it
    cluster.ok("DELETE", f"/api/v1/namespaces/{ns.name}/pods/hubkit-gina?gracePeriodSeconds=0")
    await _until(lambda: ns.objects("secrets", "hubkit.io/hub=testhub") == [])
    await _until(lambda: "hubkit-gina" not in spawner.pods.cache)  # type: ignore[union-attr]  # the watch saw it
    status = await spawner.poll(spec, result.state)
    assert status is not None and status.reason_code == "pod-gone"


async def test_pvc_created_once_reused_and_deleted_with_the_user(spawner: KubeSpawner, ns: Namespace) -> None:
    spec = make_spec("bob")
    first = Ctx()
    r1 = await spawner.start(spec, first)
    (pvc,) = ns.objects("persistentvolumeclaims")
    assert pvc["metadata"]["name"] == "hubkit-home-bob"
    assert pvc["status"]["phase"] == "Bound"  # the PV controller bound it; the scheduler waited for that
    uid = pvc["metadata"]["uid"]
    assert "Created storage claim hubkit-home-bob" in first.messages()
    await spawner.stop(spec, r1.state, now=True)
    assert ns.objects("persistentvolumeclaims")[0]["metadata"]["uid"] == uid  # kept after stop

    second = Ctx()
    r2 = await spawner.start(spec, second)
    assert "Using existing storage claim hubkit-home-bob" in second.messages()
    named = make_spec("bob", "nb1")
    r3 = await spawner.start(named, Ctx())
    claims = {v["persistentVolumeClaim"]["claimName"] for p in ns.objects("pods")
              for v in p["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"hubkit-home-bob"}
    assert len(ns.objects("pods")) == 2
    await spawner.stop(spec, r2.state, now=True)
    await spawner.stop(named, r3.state, now=True)
    assert ns.names("pods") == []
    assert [p["metadata"]["uid"] for p in ns.objects("persistentvolumeclaims")] == [uid]

    # the user is deleted from the hub: with storage.delete_pvc the claim goes (the hook reaches the spawner)
    hooks = _hub_hooks(spawner)
    await hooks.user_deleted(UserInfo("bob"))
    await _until(lambda: ns.objects("persistentvolumeclaims") == [])
    await hooks.user_deleted(UserInfo("bob"))  # already gone: fine


async def test_claim_kept_with_the_user_by_default(ns: Namespace, image: str) -> None:
    sp = KubeSpawner(make_config(ns, image, storage={}), hub_info())
    await sp.startup()
    try:
        result = await sp.start(make_spec("kim"), Ctx())
        await sp.stop(make_spec("kim"), result.state, now=True)
        await _hub_hooks(sp).user_deleted(UserInfo("kim"))
        assert ns.names("persistentvolumeclaims") == ["hubkit-home-kim"]
    finally:
        await sp.shutdown()


async def test_stale_pod_with_same_name_is_replaced(spawner: KubeSpawner, ns: Namespace) -> None:
    spec = make_spec("dave")
    r1 = await spawner.start(spec, Ctx())
    ctx = Ctx()
    r2 = await spawner.start(make_spec("dave"), ctx)  # hub lost track; the old pod must not block the new one
    assert "Removing an earlier pod named hubkit-dave" in ctx.messages()
    assert r2.state["pod_uid"] != r1.state["pod_uid"]
    assert [p["metadata"]["uid"] for p in ns.objects("pods")] == [r2.state["pod_uid"]]
    await spawner.stop(spec, r2.state, now=True)


async def test_delete_uses_grace_period(spawner: KubeSpawner, ns: Namespace) -> None:
    spec = make_spec("erin")
    result = await spawner.start(spec, Ctx())
    spawner.cfg.delete_grace_period = 2
    box = spawner.tracker.open("hubkit-erin")
    await spawner.stop(spec, result.state)
    seen: list[str] = []
    while not box.queue.empty():
        _, etype, obj = box.queue.get_nowait()
        if obj["metadata"].get("deletionTimestamp"):
            seen.append(f"{etype}:{obj['metadata']['deletionGracePeriodSeconds']}")
        if etype == "DELETED":
            seen.append("DELETED")
    spawner.tracker.close(box)
    assert seen[0] == "MODIFIED:2" and seen[-1] == "DELETED", seen


async def test_per_server_service(ns: Namespace, image: str, cluster: ControlPlane) -> None:
    # the example Role has no services (the example does not use them): this test grants them
    rules = [*_example_rules(), {"apiGroups": [""], "resources": ["services"], "verbs": ["create", "delete", "list"]}]
    cluster.ok("PATCH", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns.name}/roles/hubkit-hub",
               {"rules": rules}, content_type="application/merge-patch+json")
    sp = KubeSpawner(make_config(ns, image, service=True, host_network=False), hub_info())
    await sp.startup()
    try:
        spec = make_spec("frank", "nb1")
        result = await sp.start(spec, Ctx())
        (svc,) = ns.objects("services")
        assert svc["metadata"]["name"] == "hubkit-frank--nb1"
        assert svc["spec"]["selector"]["hubkit.io/server-name"] == "nb1"
        assert svc["spec"]["clusterIP"]  # allocated by the API server from the service range
        assert result.endpoint.url == f"http://hubkit-frank--nb1.{ns.name}.svc:8888"
        await sp.stop(spec, result.state, now=True)
        assert ns.objects("services") == [] and ns.names("pods") == []
    finally:
        await sp.shutdown()


def _example_rules() -> list[dict[str, object]]:
    from hubkit_spawn_k8s.testing.helpers import example_rbac

    return list(next(d for d in example_rbac() if d["kind"] == "Role")["rules"])
