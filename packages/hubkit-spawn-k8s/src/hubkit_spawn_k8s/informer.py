"""One list+watch loop per resource kind and namespace, shared by every server.

The watch runs in its own thread (the client blocks) and hands each change to the event loop. It resumes
from the last ``resourceVersion`` it saw (bookmarks keep that fresh) and re-lists when the API answers
``410 Gone``, turning the difference between the new list and its cache into synthetic events so that no
pod's state is lost across the gap.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from .kubeapi import status_of

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Handler = Callable[[str, Obj], None]


class Informer:
    def __init__(
        self,
        name: str,
        list_fn: Callable[..., Any],
        namespace: str,
        handler: Handler,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout: int = 300,
        keep_cache: bool = True,
    ) -> None:
        self.name = name
        self._list_fn = list_fn
        self._namespace = namespace
        self._handler = handler
        self._selectors = {k: v for k, v in (("label_selector", label_selector), ("field_selector", field_selector)) if v}
        self._timeout = timeout
        self._keep_cache = keep_cache
        self.cache: dict[str, Obj] = {}
        self.synced = asyncio.Event()
        self.refused = asyncio.Event()  # the first list was refused (401/403): see ``error``
        self.error = ""
        self.relists = 0
        self.watch_requests = 0
        self.resource_version: str | None = None
        self._stop = threading.Event()
        self._resp: Any = None
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=f"hubkit-k8s-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:
            try:
                resp.shutdown() if hasattr(resp, "shutdown") else resp.close()
            except Exception:  # closing a socket another thread reads from may raise; it still unblocks
                pass

    def join(self, timeout: float = 5) -> None:
        self._thread.join(timeout)

    # -- thread -------------------------------------------------------------------------------------------
    def _deliver(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed: the hub is gone
            self._stop.set()

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self._relist()
                self._watch_once()
                backoff = 0.5
            except ApiException as exc:
                if exc.status == 410:
                    self.resource_version = None
                    self.relists += 1
                    continue
                if self._stop.is_set():
                    break
                detail = status_of(exc).get("message") or exc.reason  # e.g. which verb the Role lacks
                if exc.status in (401, 403) and self.resource_version is None:
                    self.error = f"{exc.status} {detail}"
                    self._deliver(self.refused.set)
                log.warning("watch %s failed: %s %s; retrying in %.1fs", self.name, exc.status, detail, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30)
            except Exception as exc:
                if self._stop.is_set():
                    break
                log.warning("watch %s interrupted (%s); retrying in %.1fs", self.name, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30)

    def _relist(self) -> None:
        resp = self._list_fn(self._namespace, _preload_content=False, **self._selectors)
        try:
            body = json.loads(resp.data)
        finally:
            resp.release_conn()
        self.resource_version = body["metadata"]["resourceVersion"]
        self._deliver(self._apply_list, body.get("items") or [])

    def _watch_once(self) -> None:
        self.watch_requests += 1
        resp = self._list_fn(
            self._namespace,
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._timeout,
            _preload_content=False,
            _request_timeout=(10, self._timeout + 30),
            **self._selectors,
        )
        self._resp = resp
        try:
            if self._stop.is_set():
                return
            for line in iter_resp_lines(resp):
                event = json.loads(line)
                etype, obj = event.get("type"), event.get("object") or {}
                if etype == "ERROR":
                    code = obj.get("code")
                    if code == 410:
                        self.resource_version = None
                        self.relists += 1
                        return
                    raise ApiException(status=code, reason=f"{obj.get('reason')}: {obj.get('message')}")
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if rv:
                    self.resource_version = rv
                if etype != "BOOKMARK":
                    self._deliver(self._apply, etype, obj)
                if self._stop.is_set():
                    return
        finally:
            self._resp = None
            try:
                resp.release_conn()
            except Exception:
                pass

    # -- loop side ----------------------------------------------------------------------------------------
    def _apply(self, etype: str, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        if self._keep_cache:
            if etype == "DELETED":
                self.cache.pop(name, None)
            else:
                self.cache[name] = obj
        self._dispatch(etype, obj)

    def _apply_list(self, items: list[Obj]) -> None:
        fresh = {o["metadata"]["name"]: o for o in items}
        if self._keep_cache:
            for name, old in list(self.cache.items()):
                if name not in fresh:
                    self.cache.pop(name)
                    self._dispatch("DELETED", old)
        for name, obj in fresh.items():
            prev = self.cache.get(name)
            if prev is None or prev["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                if self._keep_cache:
                    self.cache[name] = obj
                self._dispatch("ADDED" if prev is None else "MODIFIED", obj)
        self.synced.set()

    def _dispatch(self, etype: str, obj: Obj) -> None:
        try:
            self._handler(etype, obj)
        except Exception:
            log.exception("handler for %s %s failed", self.name, etype)


