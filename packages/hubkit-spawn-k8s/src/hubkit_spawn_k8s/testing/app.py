"""The fake API server's HTTP surface (core/v1 only): what the ``kubernetes`` client calls for pods, PVCs,
services, events and namespaces, including ``?watch=true`` streams of newline-delimited JSON events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from .selectors import SelectorError, parse_field_selector, parse_label_selector
from .status import ApiError, kind_of, status_object
from .store import CLUSTER_SCOPED, RESOURCES, Gone
from .validation import check_kind, validate_object

if TYPE_CHECKING:
    from .cluster import Cluster


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.status, status_code=exc.code)


def create_app(cluster: Cluster) -> Starlette:
    store = cluster.store

    def resource_of(request: Request) -> str:
        resource = str(request.path_params["resource"])
        if resource not in RESOURCES:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({resource})")
        return resource

    def count(request: Request) -> None:
        key = f"{request.method} {request.path_params.get('resource', 'namespaces')}"
        store.requests[key] = store.requests.get(key, 0) + 1

    async def collection(request: Request) -> Response:
        try:
            resource = request.path_params.get("resource", "namespaces")
            if resource != "namespaces":
                resource = resource_of(request)
            namespace = request.path_params.get("namespace")
            count(request)
            if request.method == "POST":
                body = await _json(request)
                check_kind(resource, body)
                validate_object(resource, body, schema=cluster.schema_validation)
                body.setdefault("apiVersion", "v1")
                body.setdefault("kind", kind_of(resource))
                obj = cluster.create(resource, namespace, body)
                return JSONResponse(obj, status_code=201)
            q = request.query_params
            labels = parse_label_selector(q.get("labelSelector"))
            fields = parse_field_selector(q.get("fieldSelector"))
            if q.get("watch") in ("true", "1"):
                return await _watch(request, resource, namespace, labels, fields)
            items, rv = store.list(resource, namespace, labels, fields)
            limit = int(q.get("limit") or 0)
            return JSONResponse(
                {
                    "kind": f"{kind_of(resource)}List",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(rv)},
                    "items": items[:limit] if limit else items,
                }
            )
        except SelectorError as exc:
            return _error(ApiError(400, "BadRequest", str(exc)))
        except ApiError as exc:
            return _error(exc)

    async def item(request: Request) -> Response:
        try:
            resource = request.path_params.get("resource", "namespaces")
            if resource != "namespaces":
                resource = resource_of(request)
            namespace = request.path_params.get("namespace")
            name = request.path_params["name"]
            count(request)
            if request.method == "GET":
                return JSONResponse(store.get(resource, namespace, name))
            if request.method == "DELETE":
                opts = await _json(request, optional=True)
                grace = opts.get("gracePeriodSeconds")
                if grace is None and request.query_params.get("gracePeriodSeconds") is not None:
                    grace = int(request.query_params["gracePeriodSeconds"])
                return JSONResponse(cluster.delete(resource, namespace, name, grace))
            if request.method == "PATCH":
                ctype = request.headers.get("content-type", "")
                if "merge-patch" not in ctype:
                    raise ApiError(415, "UnsupportedMediaType", f"the fake API server only supports merge patches, not {ctype}")
                patch = await _json(request)
                obj = store.update(resource, namespace, name, lambda o: _merge(o, patch))
                return JSONResponse(obj)
            raise ApiError(405, "MethodNotAllowed", "method not allowed")
        except ApiError as exc:
            return _error(exc)

    async def pod_log(request: Request) -> Response:
        try:
            pod = store.get("pods", request.path_params["namespace"], request.path_params["name"])
            lines = cluster.kubelet.log_lines(pod)
            tail = request.query_params.get("tailLines")
            if tail:
                lines = lines[-int(tail):]
            return PlainTextResponse("".join(line + "\n" for line in lines))
        except ApiError as exc:
            return _error(exc)

    async def _watch(request: Request, resource: str, namespace: str | None, labels: Any, fields: Any) -> Response:
        q = request.query_params
        await cluster.watch_gate.wait()
        since = int(q["resourceVersion"]) if q.get("resourceVersion") else None
        timeout = min(float(q.get("timeoutSeconds") or 1800), 1800.0)
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        try:
            watcher = store.open_watch(resource, namespace, labels, fields, since)
        except Gone as exc:
            store.stats[resource].total += 1
            line = json.dumps({"type": "ERROR", "object": status_object(410, "Expired", str(exc))}) + "\n"
            return Response(line, media_type="application/json")

        async def stream() -> AsyncIterator[bytes]:
            deadline = time.monotonic() + timeout
            try:
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    try:
                        item = await asyncio.wait_for(watcher.queue.get(), min(left, cluster.bookmark_interval))
                    except TimeoutError:
                        if bookmarks:
                            mark = {"kind": kind_of(resource), "apiVersion": "v1",
                                    "metadata": {"resourceVersion": str(store.rv)}}
                            yield (json.dumps({"type": "BOOKMARK", "object": mark}) + "\n").encode()
                        continue
                    if item is None:
                        return
                    kind, obj = item
                    yield (json.dumps({"type": kind, "object": obj}) + "\n").encode()
            finally:
                store.close_watch(watcher)

        return StreamingResponse(stream(), media_type="application/json")

    async def api_versions(request: Request) -> Response:
        return JSONResponse({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})

    async def version(request: Request) -> Response:
        return JSONResponse({"major": "1", "minor": "32", "gitVersion": "v1.32.0-hubkit-fake", "platform": "linux/amd64"})

    routes = [
        Route("/version", version),
        Route("/api", api_versions),
        Route("/api/v1/namespaces", collection, methods=["GET", "POST"]),
        Route("/api/v1/namespaces/{name}", item, methods=["GET", "DELETE", "PATCH"]),
        Route("/api/v1/namespaces/{namespace}/pods/{name}/log", pod_log),
        Route("/api/v1/namespaces/{namespace}/{resource}", collection, methods=["GET", "POST"]),
        Route("/api/v1/namespaces/{namespace}/{resource}/{name}", item, methods=["GET", "DELETE", "PATCH"]),
        Route("/api/v1/{resource}", collection, methods=["GET"]),
    ]
    return Starlette(routes=routes)


async def _json(request: Request, *, optional: bool = False) -> dict[str, Any]:
    raw = await request.body()
    if not raw and optional:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "BadRequest", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the request body must be a JSON object")
    return body


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386 JSON merge patch."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


__all__ = ["CLUSTER_SCOPED", "create_app"]
