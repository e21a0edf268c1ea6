"""hubkit-proxy replicas found through Kubernetes: the EndpointSlices of a (headless) Service.

``[proxy.hubkit-proxy] discovery = "kubernetes"`` lets the proxies run as a plain Deployment: every ready pod
behind the Service is a replica the hub pushes routes to, and a pod that comes or goes is followed through one
watch on EndpointSlices (label ``kubernetes.io/service-name``), not polled. EndpointSlices rather than
Endpoints: they are the API that replaced Endpoints (``discovery.k8s.io/v1``, or ``v1beta1`` on servers
before 1.21), and they are what the endpoint controllers of current clusters write.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from hubkit.plugins.registry import HubInfo
from pydantic import BaseModel, ConfigDict, Field

from .config import KubeSpawnerConfig
from .informer import Informer
from .kubeapi import load_configuration, raw_call, raw_lister

log = logging.getLogger(__name__)
Obj = dict[str, Any]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class EndpointSliceOptions(BaseModel):
    """``[proxy.hubkit-proxy.discovery_options]`` for ``discovery = "kubernetes"``."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(description="The Service whose ready endpoints are the proxy replicas (headless is best).")
    namespace: str = Field("default", description="Its namespace.")
    port_name: str = Field("api", description="The name of the route-API port in the Service.")
    scheme: str = Field("http", pattern="^https?$")
    kubeconfig: str | None = Field(None, description="kubeconfig file; None: in-cluster config, else ~/.kube/config.")
    context: str | None = None
    watch_timeout: int = Field(300, ge=1)


def replica_urls(slices: list[Obj], port_name: str, scheme: str = "http") -> list[str]:
    """The route-API URLs of every ready endpoint in ``slices`` (sorted, without duplicates)."""
    urls: set[str] = set()
    for sl in slices:
        port = next((p.get("port") for p in sl.get("ports") or [] if p.get("name") == port_name), None)
        if not port:
            continue
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            for addr in ep.get("addresses") or []:
                host = f"[{addr}]" if ":" in addr else addr
                urls.add(f"{scheme}://{host}:{port}")
    return sorted(urls)


def endpointslice_version(api: Any) -> str:
    """``v1`` where the server serves it, else ``v1beta1`` (Kubernetes 1.17-1.20)."""
    resp = raw_call(api, "GET", "/apis/discovery.k8s.io")
    try:
        versions = [v["version"] for v in json.loads(resp.data)["versions"]]
    finally:
        resp.release_conn()
    return "v1" if "v1" in versions else "v1beta1"


class EndpointSliceReplicas:
    """A ``hubkit_proxy.plugin.ReplicaSource``: registered as entry point ``kubernetes`` of
    ``hubkit.proxy_replicas``."""

    def __init__(self, options: dict[str, Any], hub: HubInfo) -> None:
        self.opts = EndpointSliceOptions.model_validate(options)
        self.informer: Informer | None = None
        self.urls: list[str] | None = None
        self.on_change: Callable[[list[str]], None] | None = None

    async def start(self, on_change: Callable[[list[str]], None]) -> None:
        from kubernetes import client

        self.on_change = on_change
        conf = await asyncio.to_thread(
            load_configuration,
            KubeSpawnerConfig.model_validate({"kubeconfig": self.opts.kubeconfig, "context": self.opts.context}),
        )
        api = client.ApiClient(conf)
        version = await asyncio.to_thread(endpointslice_version, api)
        path = f"/apis/discovery.k8s.io/{version}/namespaces/{{namespace}}/endpointslices"
        self.informer = Informer(
            f"endpointslices/{self.opts.service}", raw_lister(api, path), self.opts.namespace,
            lambda etype, obj: self._changed(), label_selector=f"{SERVICE_NAME_LABEL}={self.opts.service}",
            timeout=self.opts.watch_timeout,
        )
        self.informer.start()
        waits = [asyncio.ensure_future(e.wait()) for e in (self.informer.synced, self.informer.refused)]
        await asyncio.wait(waits, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        if not self.informer.synced.is_set():
            why = self.informer.error or "no answer in 60 s"
            await self.stop()
            raise RuntimeError(
                f"cannot list the EndpointSlices of Service {self.opts.namespace}/{self.opts.service} ({why}): is "
                "the API server reachable, and may the hub list and watch endpointslices (discovery.k8s.io)?"
            )
        self._changed(force=True)

    def _changed(self, force: bool = False) -> None:
        if self.informer is None or not (self.informer.synced.is_set() or force):
            return
        urls = replica_urls(list(self.informer.cache.values()), self.opts.port_name, self.opts.scheme)
        if urls != self.urls or force:
            self.urls = urls
            if self.on_change:
                self.on_change(urls)

    async def stop(self) -> None:
        if self.informer is not None:
            self.informer.stop()
            await asyncio.to_thread(self.informer.join, 5)
