"""hubkit-proxy replicas found through the EndpointSlices of a headless Service ([proxy.hubkit-proxy]
discovery = "kubernetes"), followed as they come and go, with the hub's account limited to the example Role.

The replicas are hubkit-proxy processes on 127.0.0.1, each with its own API port, and the test writes their
EndpointSlices itself (one per replica, since the ports differ), as the EndpointSlice controller does for a
Deployment's pods: on this machine those pods would have the node's public address, and the tests stay on
loopback. That the controller writes slices labelled for the example's Service is checked in test_examples.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hubkit.testing.processes import read_ports
from hubkit_spawn_k8s.testing.helpers import TINY_SERVER, Namespace

from .hubctl import KubeHub, progress, running, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
SERVICE = "hubkit-proxy-api"


@dataclass
class Replica:
    port: int
    api_port: int
    proc: subprocess.Popen[bytes]

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def routes(self, token: str) -> dict[str, Any]:
        return dict(httpx.get(f"{self.api}/api/routes", headers={"Authorization": f"token {token}"}).json())


@contextmanager
def replicas(n: int, token: str, workdir: Path) -> Iterator[list[Replica]]:
    """``n`` hubkit-proxy processes on port 0 (their ports read back from their ports files)."""
    started: list[Replica] = []
    try:
        for i in range(n):
            ports_file = workdir / f"proxy{i}.ports.json"
            log = open(workdir / f"proxy{i}.log", "ab")  # noqa: SIM115
            proc = subprocess.Popen(
                [sys.executable, "-m", "hubkit_proxy", "--ip", "127.0.0.1", "--port", "0", "--api-ip",
                 "127.0.0.1", "--api-port", "0", "--ports-file", str(ports_file),
                 "--state-file", str(workdir / f"proxy{i}.jsonl")],
                env=dict(os.environ, CONFIGPROXY_AUTH_TOKEN=token), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
            log.close()
            got = wait_until(lambda f=ports_file: read_ports(f), 20, "proxy replica's ports")
            r = Replica(got["port"], got["api_port"], proc)
            started.append(r)
            wait_until(lambda r=r: _answers(r, token), 20, "proxy replica up")
        yield started
    finally:
        for r in started:
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGTERM)
                r.proc.wait(10)


def _point_at_hub(r: Replica, token: str, hub_url: str) -> None:
    """The default route, as the example's Deployment gives it (--default-target): set once the hub's port is
    known, since the hub binds port 0."""
    got = httpx.post(f"{r.api}/api/routes/", json={"target": hub_url}, headers={"Authorization": f"token {token}"})
    assert got.status_code == 201, got.text


def _answers(r: Replica, token: str) -> bool:
    try:
        return httpx.get(f"{r.api}/api/routes", headers={"Authorization": f"token {token}"}, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _slice(ns: Namespace, name: str, api_port: int, ready: bool = True) -> None:
    ns.cluster.ok("POST", f"/apis/discovery.k8s.io/v1beta1/namespaces/{ns.name}/endpointslices", {
        "apiVersion": "discovery.k8s.io/v1beta1", "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": SERVICE,
                                              "endpointslice.kubernetes.io/managed-by": "hubkit-tests"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}],
        "ports": [{"name": "api", "port": api_port, "protocol": "TCP"}],
    })


def test_hub_follows_replicas_through_endpointslices(ns: Namespace, image: str, tmp_path: Path) -> None:
    token = secrets.token_hex(16)
    ns.cluster.ok("POST", f"/api/v1/namespaces/{ns.name}/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE},
        "spec": {"clusterIP": "None", "ports": [{"name": "api", "port": 8001}]}})
    hub = KubeHub(tmp_path / "hub", ns, image, k8s={"cmd": TINY_SERVER, "storage": {"enabled": False}},
                  proxy_options={"should_start": False, "auth_token": token, "discovery": "kubernetes",
                                 "discovery_options": {"namespace": ns.name, "service": SERVICE,
                                                       "kubeconfig": str(ns.kubeconfig)}})
    with replicas(3, token, tmp_path) as (a, b, c):
        _slice(ns, "proxy-a", a.api_port)
        _slice(ns, "proxy-b", b.api_port)
        _slice(ns, "proxy-c", c.api_port, ready=False)  # starting: not a replica yet
        with running(hub):
            for r in (a, b, c):
                _point_at_hub(r, token, f"http://127.0.0.1:{hub.hub_port}")
            user_token = hub.token("alice")
            with httpx.Client(base_url=hub.url, headers={"Authorization": f"token {user_token}"}, timeout=60) as h:
                assert h.post("/hub/api/users/alice/server").status_code in (201, 202)
                assert progress(h, "alice")[-1].get("ready")
                # both ready replicas have the route, and either one reaches the pod
                for r in (a, b):
                    assert "/user/alice" in r.routes(token), r.routes(token)
                    got = httpx.get(f"http://127.0.0.1:{r.port}/user/alice/api/status",
                                    headers={"Authorization": f"token {user_token}"}, timeout=30)
                    assert got.status_code == 200, got.text[:300]
                assert "/user/alice" not in c.routes(token)

                # c becomes ready: the hub pushes this hub's routes to it
                ns.cluster.ok("PATCH", f"/apis/discovery.k8s.io/v1beta1/namespaces/{ns.name}/endpointslices/proxy-c",
                              {"endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]},
                              content_type="application/merge-patch+json")
                wait_until(lambda: "/user/alice" in c.routes(token), 30, "routes pushed to the new replica")

                # a is scaled away: the hub no longer writes to it (its stale table shows it)
                ns.cluster.ok("DELETE", f"/apis/discovery.k8s.io/v1beta1/namespaces/{ns.name}/endpointslices/proxy-a")
                now = "proxy replicas now " + ", ".join(sorted([b.api, c.api]))
                wait_until(lambda: now in hub.log(), 30, "the hub to follow the scale-down")
                assert h.delete("/hub/api/users/alice/server").status_code in (202, 204)
                wait_until(lambda: "/user/alice" not in b.routes(token) and "/user/alice" not in c.routes(token),
                           60, "route removed from the current replicas")
                assert "/user/alice" in a.routes(token)
                wait_until(lambda: ns.names("pods") == [], 60, "pod gone")
