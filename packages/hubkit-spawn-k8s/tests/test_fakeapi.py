"""The fake API server is faithful where the spawner relies on it, checked with the unmodified client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hubkit_spawn_k8s.testing import FakeKubernetes
from hubkit_spawn_k8s.testing.helpers import CRASH, TINY
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def api(kube: FakeKubernetes, tmp_path: Path) -> Iterator[client.CoreV1Api]:
    path = kube.write_kubeconfig(tmp_path / "kubeconfig")
    api_client = config.new_client_from_config(config_file=path)  # the ordinary kubeconfig route
    yield client.CoreV1Api(api_client)
    api_client.close()


def pod(name: str, image: str = TINY, **labels: str) -> dict:  # type: ignore[type-arg]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": image, "ports": [{"containerPort": 8080}]}]}}


def status(exc: ApiException) -> dict:  # type: ignore[type-arg]
    return json.loads(exc.body)


def wait_for(fn, seconds: float = 10):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_crud_errors_are_status_objects(api: client.CoreV1Api) -> None:
    created = api.create_namespaced_pod("default", pod("p1", app="x"))
    assert created.metadata.uid and created.status.phase == "Pending"
    with pytest.raises(ApiException) as dup:
        api.create_namespaced_pod("default", pod("p1"))
    assert dup.value.status == 409
    assert status(dup.value) | {"message": ""} == {"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": "", "reason": "AlreadyExists", "code": 409,
        "details": {"name": "p1", "kind": "pods"}}
    with pytest.raises(ApiException) as missing:
        api.read_namespaced_pod("nope", "default")
    assert missing.value.status == 404 and status(missing.value)["reason"] == "NotFound"
    with pytest.raises(ApiException) as bad:
        api.create_namespaced_pod("default", pod("Bad_Name"))
    assert bad.value.status == 422
    body = status(bad.value)
    assert body["reason"] == "Invalid" and body["details"]["causes"][0]["field"] == "metadata.name"
    with pytest.raises(ApiException) as nons:
        api.create_namespaced_pod("nowhere", pod("p2"))
    assert nons.value.status == 404 and "namespaces" in status(nons.value)["message"]


def test_schema_violation_is_422(api: client.CoreV1Api, kube: FakeKubernetes) -> None:
    body = pod("p3")
    body["spec"]["containers"][0]["resources"] = {"limits": {"memory": "lots"}}
    with pytest.raises(ApiException) as bad:
        api.create_namespaced_pod("default", body)
    assert bad.value.status == 422
    assert "resources.limits[memory]" in status(bad.value)["message"]
    # a body the client's own models would refuse, sent raw: the server's schema check answers 422
    import httpx

    raw = pod("p4")
    raw["spec"]["containers"][0]["ports"] = [{"containerPort": "eighty"}]
    r = httpx.post(f"{kube.url}/api/v1/namespaces/default/pods", json=raw)
    assert r.status_code == 422 and r.json()["reason"] == "Invalid"
    assert "containerPort" in r.json()["message"] or "ports" in r.json()["message"]


def test_selectors(api: client.CoreV1Api) -> None:
    api.create_namespaced_pod("default", pod("a", tier="web", env="prod"))
    api.create_namespaced_pod("default", pod("b", tier="db", env="prod"))
    api.create_namespaced_pod("default", pod("c", tier="web"))
    names = lambda **kw: sorted(p.metadata.name for p in api.list_namespaced_pod("default", **kw).items)  # noqa: E731
    assert names(label_selector="tier=web") == ["a", "c"]
    assert names(label_selector="tier=web,env=prod") == ["a"]
    assert names(label_selector="tier in (db, cache)") == ["b"]
    assert names(label_selector="!env") == ["c"]
    assert names(label_selector="env,tier!=db") == ["a"]
    assert names(field_selector="metadata.name=b") == ["b"]
    wait_for(lambda: names(field_selector="status.phase=Running") == ["a", "b", "c"])
    events = api.list_namespaced_event("default", field_selector="involvedObject.kind=Pod,involvedObject.name=a")
    assert {"Scheduled", "Pulling", "Pulled", "Created", "Started"} <= {e.reason for e in events.items}
    with pytest.raises(ApiException) as bad:
        api.list_namespaced_pod("default", field_selector="metadata.name in (a)")
    assert bad.value.status == 400


def test_watch_resume_bookmarks_and_410(api: client.CoreV1Api, kube: FakeKubernetes) -> None:
    rv = api.list_namespaced_pod("default").metadata.resource_version
    api.create_namespaced_pod("default", pod("w1"))
    w = watch.Watch()
    seen = [(e["type"], e["object"].metadata.name) for e in
            w.stream(api.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=1)]
    assert seen[0] == ("ADDED", "w1") and all(n == "w1" for _, n in seen)
    assert ("MODIFIED", "w1") in seen  # scheduling and running
    kube.compact()
    resp = api.list_namespaced_pod("default", watch=True, resource_version=rv, _preload_content=False)
    lines = [json.loads(line) for line in resp.data.decode().splitlines()]
    assert lines[0]["type"] == "ERROR"
    assert lines[0]["object"]["code"] == 410 and lines[0]["object"]["kind"] == "Status"
    latest = api.list_namespaced_pod("default").metadata.resource_version
    resp = api.list_namespaced_pod("default", watch=True, resource_version=latest, allow_watch_bookmarks=True,
                                   timeout_seconds=1, _preload_content=False)
    types = [json.loads(line)["type"] for line in resp.data.decode().splitlines()]
    assert "BOOKMARK" in types and "ERROR" not in types
    assert int(latest) > int(rv)


def test_delete_with_grace_period_then_gone(api: client.CoreV1Api, kube: FakeKubernetes) -> None:
    api.create_namespaced_pod("default", pod("g1"))
    wait_for(lambda: api.read_namespaced_pod("g1", "default").status.phase == "Running")
    deleted = api.delete_namespaced_pod("g1", "default", grace_period_seconds=2)
    assert deleted.metadata.deletion_timestamp is not None
    assert deleted.metadata.deletion_grace_period_seconds == 2
    wait_for(lambda: not api.list_namespaced_pod("default", field_selector="metadata.name=g1").items)
    with pytest.raises(ApiException) as gone:
        api.delete_namespaced_pod("g1", "default")
    assert gone.value.status == 404


def test_crash_loop_and_log(api: client.CoreV1Api) -> None:
    api.create_namespaced_pod("default", pod("crash", CRASH))

    def looping():  # type: ignore[no-untyped-def]
        cs = api.read_namespaced_pod("crash", "default").status.container_statuses
        return cs and cs[0].state.waiting and cs[0].state.waiting.reason == "CrashLoopBackOff" and cs[0]

    cs = wait_for(looping)
    assert cs.restart_count >= 2 and cs.last_state.terminated.exit_code == 3
    assert "boom" in api.read_namespaced_pod_log("crash", "default", tail_lines=5)


def test_pvc_binding_and_namespaces(api: client.CoreV1Api) -> None:
    api.create_namespace({"metadata": {"name": "team-a"}})
    pvc = {"metadata": {"name": "home"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                  "resources": {"requests": {"storage": "1Gi"}}}}
    created = api.create_namespaced_persistent_volume_claim("team-a", pvc)
    assert created.status.phase == "Bound" and created.spec.storage_class_name == "standard"
    assert [n.metadata.name for n in api.list_namespace().items] == ["default", "kube-system", "team-a"]
    api.delete_namespace("team-a")
    with pytest.raises(ApiException):
        api.read_namespaced_persistent_volume_claim("home", "team-a")
