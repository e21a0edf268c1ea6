"""The ``kubernetes`` replica source of hubkit-proxy: the ready endpoints of a Service's EndpointSlices, read
and followed through one watch on the real API server, under the example Role."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hubkit_spawn_k8s.proxy_replicas import EndpointSliceReplicas, replica_urls
from hubkit_spawn_k8s.testing.helpers import Namespace, hub_info

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


def _slice(name: str, addresses: list[str], port: int, ready: bool | None = True, port_name: str = "api") -> Any:
    conditions = {} if ready is None else {"ready": ready}
    return {"apiVersion": "discovery.k8s.io/v1beta1", "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "proxies",
                                                  "endpointslice.kubernetes.io/managed-by": "hubkit-tests"}},
            "addressType": "IPv4", "endpoints": [{"addresses": addresses, "conditions": conditions}],
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}


def test_replica_urls_only_ready_endpoints_of_the_named_port() -> None:
    slices = [_slice("a", ["10.0.0.1", "10.0.0.2"], 8001), _slice("b", ["10.0.0.3"], 8001, ready=False),
              _slice("c", ["10.0.0.4"], 8001, ready=None), _slice("d", ["10.0.0.5"], 9000, port_name="http"),
              {**_slice("e", ["fd00::1"], 8001), "addressType": "IPv6"}]
    assert replica_urls(slices, "api") == ["http://10.0.0.1:8001", "http://10.0.0.2:8001", "http://10.0.0.4:8001",
                                           "http://[fd00::1]:8001"]


async def test_source_follows_slices_on_the_api_server(ns: Namespace) -> None:
    path = f"/apis/discovery.k8s.io/v1beta1/namespaces/{ns.name}/endpointslices"
    ns.cluster.ok("POST", path, _slice("one", ["127.0.0.1"], 18001))
    seen: list[list[str]] = []
    source = EndpointSliceReplicas({"namespace": ns.name, "service": "proxies", "kubeconfig": str(ns.kubeconfig)},
                                   hub_info())
    await source.start(seen.append)
    try:
        assert seen == [["http://127.0.0.1:18001"]]  # known before start() returns
        ns.cluster.ok("POST", path, _slice("two", ["127.0.0.1"], 18002))
        for _ in range(100):
            if len(seen) > 1:
                break
            await asyncio.sleep(0.1)
        assert seen[-1] == ["http://127.0.0.1:18001", "http://127.0.0.1:18002"]
        ns.cluster.ok("DELETE", f"{path}/one")
        for _ in range(100):
            if seen[-1] == ["http://127.0.0.1:18002"]:
                break
            await asyncio.sleep(0.1)
        assert seen[-1] == ["http://127.0.0.1:18002"]
    finally:
        await source.stop()


async def test_source_without_permission_says_so(ns: Namespace, cluster: Any) -> None:
    # an account that may not list EndpointSlices (here: the default ServiceAccount of the namespace)
    kubeconfig = cluster.service_account_kubeconfig(ns.kubeconfig.parent / "nobody.kubeconfig", ns.name, "default")
    source = EndpointSliceReplicas({"namespace": ns.name, "service": "proxies", "kubeconfig": str(kubeconfig)},
                                   hub_info())
    with pytest.raises(Exception, match="endpointslices"):
        await source.start(lambda urls: None)
