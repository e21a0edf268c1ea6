"""The official ``kubernetes`` client, made safe for the event loop.

Its calls block, so each runs in a worker thread under a capacity limiter (bounded concurrency, bounded
connection pool). Replies are read raw (``_preload_content=False``) and parsed as JSON dicts: cheaper than the
generated model classes for hundreds of pods, and the same shape the manifests are built in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import pydantic
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from .config import KubeSpawnerConfig

Obj = dict[str, Any]


def load_configuration(cfg: KubeSpawnerConfig) -> client.Configuration:
    conf = client.Configuration()
    if cfg.kubeconfig:
        config.load_kube_config(config_file=cfg.kubeconfig, context=cfg.context, client_configuration=conf)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=conf)
    else:
        config.load_kube_config(context=cfg.context, client_configuration=conf)
    conf.connection_pool_maxsize = cfg.api_concurrency + 4
    return conf


def status_of(exc: ApiException) -> Obj:
    """The API server's Status body of a failed call (``{}`` if it sent none)."""
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class ClientRefused(Exception):
    """The client's own model validation refused a body before sending it (unknown field, wrong type)."""


class KubeApi:
    def __init__(self, conf: client.Configuration, concurrency: int) -> None:
        self.conf = conf
        self.core = client.CoreV1Api(client.ApiClient(conf))
        self.limiter = anyio.CapacityLimiter(concurrency)

    def new_core(self) -> client.CoreV1Api:
        """A separate client (own connection pool) for a long-lived watch."""
        return client.CoreV1Api(client.ApiClient(self.conf))

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Obj:
        fn: Callable[..., Any] = getattr(self.core, method)

        def run() -> Obj:
            try:
                resp = fn(*args, _preload_content=False, **kwargs)
            except pydantic.ValidationError as exc:
                raise ClientRefused(str(exc).replace("\n", " ")) from None
            try:
                data = resp.data
            finally:
                resp.release_conn()
            return json.loads(data) if data else {}

        return await anyio.to_thread.run_sync(run, limiter=self.limiter)

    async def text(self, method: str, *args: Any, **kwargs: Any) -> str:
        fn: Callable[..., Any] = getattr(self.core, method)

        def run() -> str:
            resp = fn(*args, _preload_content=False, **kwargs)
            try:
                return bytes(resp.data).decode(errors="replace")
            finally:
                resp.release_conn()

        return await anyio.to_thread.run_sync(run, limiter=self.limiter)

    def close(self) -> None:
        self.core.api_client.close()
