"""Issue 12, item 12 for the kubernetes spawner: the hub dies between creating a server's object and learning
that it exists. The identity (pod, Secret, claim names) is saved before anything is created, so the restarted
hub finds what was made and removes it; nothing is left behind, and the next start works.

The exact moment, with real parts: the hub reaches the API server through a TCP gate; a real admission webhook
sees the create request arrive and freezes the gate's answers before letting the request through. So the API
server creates the object, and its answer waits in the gate while the hub is killed (-9).

One hub, killed three times (each hub start costs seconds): at the token Secret's create (the first object of
a spawn) and at the pod's, restarted with ``reconcile_orphans = "off"`` (the saved names alone are enough),
then at the pod's again, restarted with ``"remove"`` (the orphan sweep runs too and does not get in the way).
The last start's server answers only after 12 s, so the start request gets 202 and the progress stream is read
live, with the pod's events from the real scheduler and kubelet in it.
"""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml
from hubkit_spawn_k8s.testing.controlplane import NODE_NAME
from hubkit_spawn_k8s.testing.helpers import Namespace, slow_server
from hubkit_spawn_k8s.testing.netgate import NetGate
from hubkit_spawn_k8s.testing.webhook import ArrivalWebhook

from .hubctl import KubeHub, progress, running, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

KILLS = [("secrets", "off"), ("pods", "off"), ("pods", "remove")]  # (created when killed, orphans at restart)


def test_hub_killed_between_create_and_answer_leaves_nothing_behind(ns: Namespace, image: str,
                                                                    tmp_path: Path) -> None:
    gate = NetGate(ns.cluster.api_port)
    conf = yaml.safe_load(ns.kubeconfig.read_text())
    conf["clusters"][0]["cluster"]["server"] = gate.url
    gated = tmp_path / "gated.kubeconfig"
    gated.write_text(yaml.safe_dump(conf))
    hub = KubeHub(tmp_path / "hub", ns, image, spawner={"reconcile_orphans": "off"}, proxy="none",
                  k8s={"storage": {"enabled": False}, "kubeconfig": str(gated), "cmd": slow_server(12)})
    mine = f"hubkit.io/hub={hub.hub_id}"
    hooks: list[ArrivalWebhook] = []
    try:
        with running(hub):
            token = hub.token("alice")
            auth = {"Authorization": f"token {token}"}
            with httpx.Client(base_url=hub.url, headers=auth, timeout=60) as c, ThreadPoolExecutor(1) as pool:
                for resource, orphans in KILLS:
                    hook = ArrivalWebhook(ns.cluster, tmp_path, ns.name, resource, on_arrival=gate.freeze)
                    hooks.append(hook)
                    hook.install()
                    name = "hubkit-alice" if resource == "pods" else "hubkit-alice-token"
                    # the start request waits (up to 10 s) for a spawn that cannot go on: sent aside
                    started = pool.submit(httpx.post, f"{hub.url}/hub/api/users/alice/server", headers=auth,
                                          timeout=60)
                    assert hook.arrived.wait(60), f"the create of {resource} never reached the API server"
                    wait_until(lambda: name in ns.names(resource), 30, f"{resource}/{name} created")  # noqa: B023
                    # labelled as this hub's: the "nothing left" check below selects by that label
                    assert [o["metadata"]["name"] for o in ns.objects(resource, mine)] == [name]
                    hub.stop(signal.SIGKILL)  # the API server's answer is still in the gate: the hub never saw it
                    gate.thaw()
                    hook.remove()
                    assert hook.seen == [name]
                    try:
                        answer = started.result(60)
                        assert answer.status_code == 202, answer.text  # "pending" before the kill, no error
                    except httpx.TransportError:
                        pass  # killed while the request waited

                    # the restarted hub finds the names it saved and removes what exists
                    hub.spawner["reconcile_orphans"] = orphans
                    hub.start()
                    wait_until(lambda: ns.objects("pods", mine) == [] and ns.objects("secrets", mine) == [], 90,
                               f"nothing left of the spawn killed at its {resource} (orphans {orphans})")
                    model = c.get("/hub/api/users/alice").json()
                    assert model["servers"] == {}, model

                # and the next start works: no name conflict, no second pod
                r = c.post("/hub/api/users/alice/server")
                assert r.status_code == 202, r.text
                events = progress(c, "alice")
                assert events[-1].get("ready"), events
                text = [e["message"] for e in events]
                assert f"Scheduled on node {NODE_NAME}" in text, text
                assert "Container started" in text, text
                assert ns.names("pods") == ["hubkit-alice"]
                assert c.delete("/hub/api/users/alice/server").status_code in (202, 204)
                wait_until(lambda: ns.names("pods") == [], 60, "pod gone")
    finally:
        for hook in hooks:
            hook.remove()
        gate.close()
