"""A network partition between hub and API server, an etcd compaction meanwhile, and the shared informer
coming back through ``410 Gone`` without missing a pod's transition.

A control plane of its own: the API server runs with ``--watch-cache=false``, so a watch resumes straight from
etcd and a compacted revision answers 410 (with the watch cache, the same 410 comes when the cache's window is
passed, e.g. after an API server restart: see test_watch_and_adopt). Its node is the node agent (stand-in),
since the machine's one kubelet serves the session's other control plane.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hubkit_spawn_k8s.spawner import KubeSpawner
from hubkit_spawn_k8s.testing import ControlPlane
from hubkit_spawn_k8s.testing.helpers import Ctx, Namespace, hub_info, make_config, make_spec
from hubkit_spawn_k8s.testing.netgate import NetGate
from hubkit_spawn_k8s.testing.nodeagent import node_agent_process

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def etcd_watch_cluster(k8s_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane(tmp_path_factory.mktemp("k8s-nocache"), bin_dir=k8s_bin, watch_cache=False) as cp:
        yield cp


async def _until(cond, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_410_after_compaction_relists_without_losing_a_transition(
    etcd_watch_cluster: ControlPlane, tmp_path: Path
) -> None:
    cp = etcd_watch_cluster
    ns = Namespace.create(cp, tmp_path)
    gate = NetGate(cp.api_port)
    through_gate = tmp_path / "gated.kubeconfig"
    conf = yaml.safe_load(ns.kubeconfig.read_text())
    conf["clusters"][0]["cluster"]["server"] = gate.url
    through_gate.write_text(yaml.safe_dump(conf))
    cfg = make_config(ns, "hubkit/none:1", kubeconfig=str(through_gate), host_network=False, port=8888,
                      storage={"enabled": False}, node_selector={"hubkit.io/node-agent": "true"}, watch_timeout=300,
                      api_retry_seconds=60, unschedulable_grace=120)  # no node yet: one comes later
    sp = KubeSpawner(cfg, hub_info())
    await sp.startup()
    try:
        spec = make_spec("alice")
        ctx = Ctx()
        task = asyncio.ensure_future(sp.start(spec, ctx))
        # the spawn now only waits on the watches for its pod to run
        await _until(lambda: any(m.startswith("Pod hubkit-alice created") for m in ctx.messages())
                     and "hubkit-alice" in sp.pods.cache)  # type: ignore[union-attr]
        pending = sp.pods.cache["hubkit-alice"]  # type: ignore[union-attr]
        assert pending["status"]["phase"] == "Pending" and not pending["spec"].get("nodeName")
        relists = sp.pods.relists  # type: ignore[union-attr]

        gate.cut()  # partition: the hub's watches drop and it cannot reconnect
        # meanwhile a node comes and the pod is scheduled and runs: transitions the hub does not see
        with node_agent_process(cp.kubeconfig, nodes=1, prefix="late", log=tmp_path / "agent.log"):
            await _until(lambda: cp.ok("GET", f"/api/v1/namespaces/{ns.name}/pods/hubkit-alice")["status"]
                         .get("phase") == "Running")
            # ... and etcd forgets the history the hub would resume from
            revision = cp.compact()
            assert revision > int(pending["metadata"]["resourceVersion"])
            assert not task.done()
            gate.restore()
            result = await asyncio.wait_for(task, 60)  # the spawn finishes: the transition was not missed
            assert sp.pods.relists > relists  # type: ignore[union-attr]  # because of 410 Gone
            assert result.state["pod_ip"] == "127.0.0.1"  # the node agent's address for its pods
            assert sp.pods.cache["hubkit-alice"]["status"]["phase"] == "Running"  # type: ignore[union-attr]

            # a pod deleted behind the hub's back during another partition still shows up as gone
            gate.cut()
            cp.ok("DELETE", f"/api/v1/namespaces/{ns.name}/pods/hubkit-alice?gracePeriodSeconds=0")
            # the cluster goes on (any write moves etcd's revision past the delete), then compacts
            cp.ok("POST", f"/api/v1/namespaces/{ns.name}/configmaps",
                  {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later"}})
            cp.compact()
            before = sp.pods.relists  # type: ignore[union-attr]
            gate.restore()
            await _until(lambda: "hubkit-alice" not in sp.pods.cache)  # type: ignore[union-attr]
            assert sp.pods.relists > before  # type: ignore[union-attr]
            status = await sp.poll(spec, result.state)
            assert status is not None and status.reason_code == "pod-gone"
    finally:
        await sp.shutdown()
        gate.close()
