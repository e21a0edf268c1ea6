"""Issue 12, item 12 for the kubernetes spawner: the hub dies between creating a server's object and learning
that it exists. The identity (pod, Secret, claim names) is saved before anything is created, so the restarted
hub finds what was made and removes it; nothing is left behind, and the next start works.

The exact moment, with real parts: the hub reaches the API server through a TCP gate; a real admission webhook
sees the create request arrive and freezes the gate's answers before letting the request through. So the API
server creates the object, and its answer waits in the gate while the hub is killed (-9).
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
import yaml
from hubkit_spawn_k8s.testing.helpers import Namespace
from hubkit_spawn_k8s.testing.netgate import NetGate
from hubkit_spawn_k8s.testing.webhook import ArrivalWebhook

from .hubctl import KubeHub, progress, running, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


# "off": the saved names alone are enough; "remove": the orphan sweep runs too and does not get in the way
@pytest.mark.parametrize(("resource", "orphans"), [("secrets", "off"), ("pods", "off"), ("pods", "remove")])
def test_hub_killed_between_create_and_answer_leaves_nothing_behind(ns: Namespace, image: str, tmp_path: Path,
                                                                    resource: str, orphans: str) -> None:
    gate = NetGate(ns.cluster.api_port)
    conf = yaml.safe_load(ns.kubeconfig.read_text())
    conf["clusters"][0]["cluster"]["server"] = gate.url
    gated = tmp_path / "gated.kubeconfig"
    gated.write_text(yaml.safe_dump(conf))
    hub = KubeHub(tmp_path / "hub", ns, image, spawner={"reconcile_orphans": orphans}, proxy="none",
                  k8s={"storage": {"enabled": False}, "kubeconfig": str(gated)})
    hook = ArrivalWebhook(ns.cluster, tmp_path, ns.name, resource, on_arrival=gate.freeze)
    hook.install()
    name = "hubkit-alice" if resource == "pods" else "hubkit-alice-token"
    mine = f"hubkit.io/hub={hub.hub_id}"
    try:
        with running(hub):
            token = hub.token("alice")
            with httpx.Client(base_url=hub.url, headers={"Authorization": f"token {token}"}, timeout=60) as c:
                r = c.post("/hub/api/users/alice/server")
                assert r.status_code in (201, 202), r.text
                assert hook.arrived.wait(60), "the create never reached the API server"
                wait_until(lambda: name in ns.names(resource), 30, f"{resource}/{name} created")
                hub.stop(signal.SIGKILL)  # the API server's answer is still in the gate: the hub never saw it
                gate.thaw()
                hook.remove()
                assert hook.seen == [name]

                hub.start()  # the restarted hub finds the names it saved and removes what exists
                wait_until(lambda: ns.objects("pods", mine) == [] and ns.objects("secrets", mine) == [], 90,
                           "nothing left of the killed spawn")
                model = c.get("/hub/api/users/alice").json()
                assert model["servers"] == {}, model

                # and the next start works: no name conflict, no second pod
                r = c.post("/hub/api/users/alice/server")
                assert r.status_code in (201, 202), r.text
                assert progress(c, "alice")[-1].get("ready")
                assert ns.names("pods") == ["hubkit-alice"]
                assert c.delete("/hub/api/users/alice/server").status_code in (202, 204)
                wait_until(lambda: ns.names("pods") == [], 60, "pod gone")
    finally:
        hook.remove()
        gate.close()
