"""The whole path with the real client, a real hub, a real hubkit-proxy and a real hubkit-singleuser in a
(fake) pod: spawn with progress, a request through the proxy, stop, PVC reuse, failures, hub restart."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest
from hubkit_spawn_k8s.testing import FakeKubernetes

from .hubctl import NOTEBOOK_IMAGE, KubeHub, progress, running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _pods(kube: FakeKubernetes) -> list[str]:
    return sorted(p["metadata"]["name"] for p in kube.objects("pods"))


def _outcome(c: httpx.Client, user: str, options: dict[str, str]) -> str:
    """Start a server and return the final message. Like JupyterHub, the API waits a little: a spawn that
    fails that fast answers 500 with the reason, a slower one 202 and the reason comes in the progress."""
    r = c.post(f"/hub/api/users/{user}/server", json=options)
    if r.status_code == 500:
        return str(r.json()["message"])
    assert r.status_code in (201, 202), r.text
    events = progress(c, user)
    assert events[-1].get("failed"), events
    return str(events[-1]["message"])


def _wait(cond, seconds: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not (value := cond()):
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)
    return value


def test_spawn_through_proxy_stop_pvc_reuse_and_restart(kube: FakeKubernetes, tmp_path: Path) -> None:
    hub = KubeHub(tmp_path / "hub", kube)
    with running(hub):
        token = hub.token("alice")
        auth = {"Authorization": f"token {token}"}
        with httpx.Client(base_url=hub.url, headers=auth, timeout=60) as c:
            # a pull slower than the API's 10 s wait, so the answer is 202 and the progress stream is live
            kube.call(lambda: kube.cluster.kubelet.extra_delay.__setitem__(NOTEBOOK_IMAGE, 11.0))
            r = c.post("/hub/api/users/alice/server")
            assert r.status_code == 202, r.text
            events = progress(c, "alice")
            kube.call(lambda: kube.cluster.kubelet.extra_delay.clear())
            assert events[-1].get("ready"), events
            text = [e["message"] for e in events]
            assert any(m.startswith("Scheduled on node fake-node-1") for m in text), text
            assert any(m.startswith('Pulling image "quay.io/jupyter/base-notebook') for m in text), text
            assert any(m.startswith('Pulled image') for m in text), text
            assert "Container started" in text, text
            assert _pods(kube) == ["hubkit-alice"]
            pvc_uid = kube.objects("persistentvolumeclaims")[0]["metadata"]["uid"]

            # through hubkit-proxy to the single-user server in the pod, authenticated by the hub
            api = c.get("/user/alice/api/status")
            assert api.status_code == 200, api.text[:300]
            assert "started" in api.json()
            contents = c.get("/user/alice/api/contents/")
            assert contents.status_code == 200
            other = httpx.get(f"{hub.url}/user/alice/api/status", timeout=30)
            assert other.status_code in (302, 401, 403)  # no token: the server refuses

            # hub restart (kill -9): the pod keeps running, the new hub re-adopts it
            hub.stop(signal.SIGKILL)
            hub.start()
            model = c.get("/hub/api/users/alice").json()
            assert model["servers"][""]["ready"] is True, model
            assert c.get("/user/alice/api/status").status_code == 200
            assert _pods(kube) == ["hubkit-alice"]

            # stop: the pod goes (grace period), the claim stays
            r = c.delete("/hub/api/users/alice/server")
            assert r.status_code in (202, 204), r.text
            _wait(lambda: _pods(kube) == [])
            _wait(lambda: c.get("/hub/api/users/alice").json()["servers"] == {})

            # a second server mounts the same claim
            assert c.post("/hub/api/users/alice/server").status_code in (201, 202)
            assert progress(c, "alice")[-1].get("ready")
            assert [p["metadata"]["uid"] for p in kube.objects("persistentvolumeclaims")] == [pvc_uid]
            assert c.delete("/hub/api/users/alice/server").status_code in (202, 204)
            _wait(lambda: _pods(kube) == [])


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        ("missing-image", "could not be pulled"),
        ("too-big", "No node in the cluster can run this server"),
    ],
)
def test_failure_reaches_progress_and_leaves_no_pod(
    kube: FakeKubernetes, tmp_path: Path, profile: str, reason: str
) -> None:
    profiles = [
        {"slug": "ok", "display_name": "OK", "default": True, "image": "hubkit/tiny:1"},
        {"slug": "missing-image", "display_name": "Broken", "image": "quay.io/nobody/missing:0"},
        {"slug": "too-big", "display_name": "Too big", "image": "hubkit/tiny:1", "mem_limit": "64Ti"},
    ]
    hub = KubeHub(tmp_path / "hub", kube, k8s={"profiles": profiles}, proxy="none")
    with running(hub):
        auth = {"Authorization": f"token {hub.token('bob')}"}
        with httpx.Client(base_url=hub.url, headers=auth, timeout=60) as c:
            # options that bypass the form are refused by the spawner at once (400), before any pod exists
            refused = c.post("/hub/api/users/bob/server", json={"profile": "huge"})
            assert refused.status_code == 400, refused.text
            assert "unknown profile 'huge'" in refused.json()["message"]
            assert _pods(kube) == []
            message = _outcome(c, "bob", {"profile": profile})
            assert reason in message, message
            events = progress(c, "bob")  # the stored stream ends with the same failure
            assert events[-1].get("failed") and reason in events[-1]["message"], events[-1]
            _wait(lambda: _pods(kube) == [])


@pytest.mark.parametrize("mode", ["report", "remove"])
def test_unknown_labelled_pod_reported_or_removed_at_hub_start(kube: FakeKubernetes, tmp_path: Path, mode: str) -> None:
    hub = KubeHub(tmp_path / "hub", kube, spawner={"reconcile_orphans": mode}, proxy="none")
    labels = {"hubkit.io/hub": hub.hub_id, "hubkit.io/component": "singleuser-server", "hubkit.io/user": "eve"}
    kube.create("pods", "default", {"apiVersion": "v1", "kind": "Pod",
                                    "metadata": {"name": "hubkit-eve", "labels": labels,
                                                 "annotations": {"hubkit.io/username": "eve"}},
                                    "spec": {"containers": [{"name": "notebook", "image": "hubkit/tiny:1"}]}})
    kube.create("pods", "default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "someone-else"},
                                    "spec": {"containers": [{"name": "c", "image": "hubkit/tiny:1"}]}})
    with running(hub):
        if mode == "remove":
            _wait(lambda: _pods(kube) == ["someone-else"])
            _wait(lambda: "default/hubkit-eve" in hub.log())
        else:
            _wait(lambda: "default/hubkit-eve" in hub.log() and "reconcile_orphans" in hub.log())
            assert _pods(kube) == ["hubkit-eve", "someone-else"]
