"""A STAND-IN for kubelets: it does a kubelet's status work for nodes it owns, and runs no containers.

Used where real kubelets cannot go: thousands of pods on a 2-core machine (the scale benchmark) and a second,
throw-away control plane (the watch tests), while the real kubelet (``ControlPlane(kubelet=True)``) runs the
end-to-end tests. What it does, through the real API server:

- registers ``--nodes`` Node objects (Ready, capacity ``--pods`` each) and renews their Leases in
  ``kube-node-lease`` every 10 s, so the node lifecycle controller keeps them Ready;
- watches pods; a pod the scheduler bound to one of its nodes gets the status a kubelet would write once the
  container runs and is ready (phase Running, podIP, hostIP, conditions, container statuses);
- a pod being deleted (``deletionTimestamp``) is removed with grace period 0, as a kubelet does once its
  containers stopped;
- one HTTP listener on ``127.0.0.1:<port>`` answers every request with 200 and ``{}``: all of its pods share the
  address ``127.0.0.1``, and the hub's readiness check on ``<podIP>:<port>`` reaches it.

No events (``Pulling``/``Started``...): the spawner derives those milestones from the pod status.

Run it as its own process (its CPU then does not count as the hub's)::

    python -m hubkit_spawn_k8s.testing.nodeagent --kubeconfig admin.kubeconfig --nodes 20 --pods 110
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from .httpd import JSONHandler

LABEL = "hubkit.io/node-agent"
VERSION = "v1.20.2-hubkit-node-agent"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def client_from_kubeconfig(path: str) -> httpx.Client:
    conf = yaml.safe_load(Path(path).read_text())
    ctx = next(c["context"] for c in conf["contexts"] if c["name"] == conf["current-context"])
    cluster = next(c["cluster"] for c in conf["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in conf["users"] if u["name"] == ctx["user"])
    return httpx.Client(base_url=cluster["server"], verify=cluster["certificate-authority"],
                        headers={"Authorization": f"Bearer {user['token']}"}, timeout=60,
                        limits=httpx.Limits(max_connections=32, max_keepalive_connections=32))


class _Answer(JSONHandler):
    def do_GET(self) -> None:
        self.reply({})


class NodeAgent:
    def __init__(self, api: httpx.Client, *, nodes: int, pods: int, prefix: str, http_port: int = 0,
                 workers: int = 8) -> None:
        self.api = api
        self.node_names = [f"{prefix}-{i}" for i in range(nodes)]
        self.owned = set(self.node_names)
        self.pods_per_node = pods
        self.http = ThreadingHTTPServer(("127.0.0.1", http_port), _Answer)
        self.http.daemon_threads = True
        self.port = int(self.http.server_address[1])
        self.stop_event = threading.Event()
        self.work: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self.done: set[str] = set()  # pod uids whose status was written
        self.workers = workers
        self.threads: list[threading.Thread] = []
        self.status_writes = 0
        self.deletes = 0

    # -- nodes ----------------------------------------------------------------------------------------------
    def _node(self, name: str) -> dict[str, Any]:
        stamp = now()
        capacity = {"cpu": "64", "memory": "256Gi", "pods": str(self.pods_per_node), "ephemeral-storage": "1Ti"}
        conds = [{"type": t, "status": s, "reason": r, "lastHeartbeatTime": stamp, "lastTransitionTime": stamp,
                  "message": "hubkit node agent (stand-in)"}
                 for t, s, r in (("Ready", "True", "KubeletReady"), ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                                 ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                                 ("PIDPressure", "False", "KubeletHasSufficientPID"))]
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                  "kubernetes.io/arch": "amd64", LABEL: "true"}},
            "spec": {},
            "status": {"capacity": capacity, "allocatable": capacity, "conditions": conds,
                       "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                     {"type": "Hostname", "address": name}],
                       "nodeInfo": {"kubeletVersion": VERSION, "kubeProxyVersion": VERSION,
                                    "containerRuntimeVersion": "none://stand-in", "operatingSystem": "linux",
                                    "architecture": "amd64", "osImage": "hubkit node agent", "kernelVersion": "",
                                    "machineID": "", "systemUUID": "", "bootID": ""}},
        }

    def register(self) -> None:
        for name in self.node_names:
            r = self.api.post("/api/v1/nodes", json=self._node(name))
            if r.status_code == 409:
                r = self.api.patch(f"/api/v1/nodes/{name}/status", json={"status": self._node(name)["status"]},
                                   headers={"Content-Type": "application/merge-patch+json"})
            r.raise_for_status()
        self.renew_leases()

    def renew_leases(self) -> None:
        for name in self.node_names:
            path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
            spec = {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro_now()}
            r = self.api.patch(path, json={"spec": spec}, headers={"Content-Type": "application/merge-patch+json"})
            if r.status_code == 404:
                r = self.api.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", json={
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "namespace": "kube-node-lease"}, "spec": spec})
            if r.status_code >= 400 and r.status_code != 409:
                print(f"node agent: lease {name}: {r.status_code} {r.text[:200]}", file=sys.stderr, flush=True)

    def _leases(self) -> None:
        while not self.stop_event.wait(10):
            try:
                self.renew_leases()
            except httpx.HTTPError as exc:
                print(f"node agent: lease renewal failed: {exc}", file=sys.stderr, flush=True)

    # -- pods -----------------------------------------------------------------------------------------------
    def _watch(self) -> None:
        rv = ""
        while not self.stop_event.is_set():
            try:
                if not rv:
                    r = self.api.get("/api/v1/pods")
                    r.raise_for_status()
                    body = r.json()
                    rv = body["metadata"]["resourceVersion"]
                    for pod in body.get("items") or []:
                        self._consider(pod)
                params = {"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true",
                          "timeoutSeconds": "60"}
                with self.api.stream("GET", "/api/v1/pods", params=params, timeout=90) as resp:
                    if resp.status_code == 410:
                        rv = ""
                        continue
                    resp.raise_for_status()
                    for line in resp.iter_lines():
                        if not line:
                            continue
                        event = json.loads(line)
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            rv = ""  # 410 Gone (or another error): list again
                            break
                        rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            self._consider(obj)
                        if self.stop_event.is_set():
                            return
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                if self.stop_event.is_set():
                    return
                print(f"node agent: pod watch interrupted ({exc}); resuming", file=sys.stderr, flush=True)
                self.stop_event.wait(0.5)

    def _consider(self, pod: dict[str, Any]) -> None:
        spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
        if spec.get("nodeName") not in self.owned:
            return
        if meta.get("deletionTimestamp"):
            self.work.put(("delete", pod))
        elif meta.get("uid") not in self.done and (pod.get("status") or {}).get("phase") == "Pending":
            self.done.add(meta["uid"])
            self.work.put(("run", pod))

    def _worker(self) -> None:
        while True:
            item = self.work.get()
            if item is None:
                return
            kind, pod = item
            try:
                if kind == "run":
                    self._run(pod)
                else:
                    self._delete(pod)
            except httpx.HTTPError as exc:
                print(f"node agent: {kind} {pod['metadata']['name']}: {exc}", file=sys.stderr, flush=True)

    def _run(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        stamp = now()
        containers = [{
            "name": c["name"], "image": c["image"], "imageID": f"stand-in://{c['image']}",
            "containerID": f"stand-in://{meta['uid']}/{c['name']}", "ready": True, "started": True,
            "restartCount": 0, "state": {"running": {"startedAt": stamp}},
        } for c in spec.get("containers") or []]
        status = {
            "phase": "Running", "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": stamp, "containerStatuses": containers,
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": stamp}
                           for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
        }
        r = self.api.patch(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                           json={"status": status}, headers={"Content-Type": "application/merge-patch+json"})
        if r.status_code != 404:
            r.raise_for_status()
            self.status_writes += 1

    def _delete(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                "preconditions": {"uid": meta["uid"]}}
        r = self.api.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", json=body)
        if r.status_code not in (404, 409):
            r.raise_for_status()
            self.deletes += 1
        self.done.discard(meta["uid"])

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> NodeAgent:
        self.register()
        for target in [self._watch, self._leases, self.http.serve_forever] + [self._worker] * self.workers:
            t = threading.Thread(target=target, daemon=True, name=f"node-agent-{target.__name__}")
            t.start()
            self.threads.append(t)
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.http.shutdown()
        self.http.server_close()
        for _ in range(self.workers):
            self.work.put(None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="hubkit's node agent (a stand-in for kubelets)")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--pods", type=int, default=110, help="pod capacity of each node")
    p.add_argument("--prefix", default="agent-node")
    p.add_argument("--http-port", type=int, default=0)
    args = p.parse_args(argv)
    agent = NodeAgent(client_from_kubeconfig(args.kubeconfig), nodes=args.nodes, pods=args.pods,
                      prefix=args.prefix, http_port=args.http_port).start()
    print(json.dumps({"port": agent.port, "nodes": agent.node_names}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    agent.stop()
    print(json.dumps({"status_writes": agent.status_writes, "deletes": agent.deletes}), flush=True)
    return 0


@contextmanager
def node_agent_process(kubeconfig: Path, *, nodes: int = 1, pods: int = 110, prefix: str = "agent-node",
                       log: Path | None = None) -> Iterator[tuple[subprocess.Popen[str], int, list[str]]]:
    """The agent as a child process: yields (process, HTTP port, node names); stopped by its PID."""
    err = open(log, "a") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "hubkit_spawn_k8s.testing.nodeagent", "--kubeconfig",
                             str(kubeconfig), "--nodes", str(nodes), "--pods", str(pods), "--prefix", prefix],
                            stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"node agent exited with {proc.wait(10)}")
        info = json.loads(line)
        yield proc, int(info["port"]), list(info["nodes"])
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if log:
            err.close()  # type: ignore[union-attr]


if __name__ == "__main__":
    sys.exit(main())
