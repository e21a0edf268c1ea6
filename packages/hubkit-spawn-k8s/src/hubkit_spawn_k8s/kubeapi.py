"""The official ``kubernetes`` client, made safe for the event loop.

Its calls block, so each runs in a worker thread under a capacity limiter (bounded concurrency, bounded
connection pool). Replies are read raw (``_preload_content=False``) and parsed as JSON dicts: cheaper than the
generated model classes for hundreds of pods, and the same shape the manifests are built in.

A call that cannot even connect (the API server restarting, a control-plane upgrade) is retried with backoff
for ``api_retry_seconds``: the request never reached the server, so repeating it is safe for every verb.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import pydantic
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from .config import KubeSpawnerConfig

Obj = dict[str, Any]
log = logging.getLogger(__name__)


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


def not_connected(exc: BaseException) -> bool:
    """True when a request failed before reaching the server (refused, DNS, connect timeout)."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        exc = exc.reason or exc
    return isinstance(exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
                      | ConnectionRefusedError)


def with_connect_retry(fn: Callable[[], Any], seconds: float) -> Any:
    """Run ``fn`` (blocking), repeating it while the API server cannot be reached, for up to ``seconds``."""
    deadline = time.monotonic() + seconds
    delay = 0.1
    while True:
        try:
            return fn()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if not not_connected(exc) or time.monotonic() + delay > deadline:
                raise
            log.info("Kubernetes API unreachable (%s); retrying in %.1fs", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _json(resp: Any) -> Obj:
    try:
        data = resp.data
    finally:
        resp.release_conn()
    return json.loads(data) if data else {}


class ClientRefused(Exception):
    """The client's own model validation refused a body before sending it (unknown field, wrong type)."""


def raw_call(api: client.ApiClient, method: str, path: str, *, query: list[tuple[str, Any]] | None = None,
             body: Any = None, content_type: str = "application/json", timeout: Any = None) -> Any:
    """Any REST call through the client's connection pool and credentials; the raw urllib3 response.

    For what the typed API classes do not have (EndpointSlices of older servers, patches with a chosen type)."""
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    params = api.param_serialize(method=method, resource_path=path, query_params=query or [],
                                 header_params=headers, body=body, auth_settings=["BearerToken"])
    resp = api.call_api(*params, _request_timeout=timeout)
    if not 200 <= resp.status <= 299:
        resp.read()
        raise ApiException.from_response(http_resp=resp, body=None, data=None)
    return resp.response


def raw_lister(api: client.ApiClient, path: str) -> Callable[..., Any]:
    """A ``list_namespaced_*``-shaped function (what :class:`Informer` calls) for any collection path with a
    ``{namespace}`` placeholder, e.g. ``/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices``."""
    names = {"label_selector": "labelSelector", "field_selector": "fieldSelector",
             "resource_version": "resourceVersion", "allow_watch_bookmarks": "allowWatchBookmarks",
             "timeout_seconds": "timeoutSeconds", "watch": "watch"}

    def call(namespace: str, _preload_content: bool = False, _request_timeout: Any = None, **kw: Any) -> Any:
        query = [(names[k], str(v).lower() if isinstance(v, bool) else v) for k, v in kw.items() if v is not None]
        return raw_call(api, "GET", path.format(namespace=namespace), query=query, timeout=_request_timeout)

    return call


class KubeApi:
    def __init__(self, conf: client.Configuration, concurrency: int, retry_seconds: float = 30) -> None:
        self.conf = conf
        self.core = client.CoreV1Api(client.ApiClient(conf))
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.retry_seconds = retry_seconds

    def new_core(self) -> client.CoreV1Api:
        """A separate client (own connection pool) for a long-lived watch."""
        return client.CoreV1Api(client.ApiClient(self.conf))

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Obj:
        fn: Callable[..., Any] = getattr(self.core, method)

        def once() -> Obj:
            try:
                resp = fn(*args, _preload_content=False, **kwargs)
            except pydantic.ValidationError as exc:
                raise ClientRefused(str(exc).replace("\n", " ")) from None
            return _json(resp)

        return await anyio.to_thread.run_sync(lambda: with_connect_retry(once, self.retry_seconds),
                                              limiter=self.limiter)

    async def request(self, method: str, path: str, body: Obj | None = None, *,
                      content_type: str = "application/json") -> Obj:
        """A call by REST path (patches of a chosen type, APIs the typed classes lack)."""

        def once() -> Obj:
            resp = raw_call(self.core.api_client, method, path, body=body, content_type=content_type)
            return _json(resp)

        return await anyio.to_thread.run_sync(lambda: with_connect_retry(once, self.retry_seconds),
                                              limiter=self.limiter)

    async def text(self, method: str, *args: Any, **kwargs: Any) -> str:
        fn: Callable[..., Any] = getattr(self.core, method)

        def once() -> str:
            resp = fn(*args, _preload_content=False, **kwargs)
            try:
                return bytes(resp.data).decode(errors="replace")
            finally:
                resp.release_conn()

        return await anyio.to_thread.run_sync(lambda: with_connect_retry(once, self.retry_seconds),
                                              limiter=self.limiter)

    def close(self) -> None:
        self.core.api_client.close()
