"""Run the fake API server (uvicorn) on its own event loop thread and drive it from tests.

Usage::

    with FakeKubernetes(tmp_path, images=[FakeImage("img", runtime="http")]) as kube:
        cfg = kube.configuration()            # a kubernetes.client.Configuration
        kube.write_kubeconfig(tmp_path / "kubeconfig")
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from .app import create_app
from .cluster import Cluster, FakeNode
from .runtime import FakeImage
from .store import Obj, WatchStats

T = TypeVar("T")


class FakeKubernetes:
    def __init__(
        self,
        workdir: str | Path,
        *,
        images: list[FakeImage] | None = None,
        nodes: list[FakeNode] | None = None,
        schema_validation: bool = True,
        storage_classes: tuple[str, ...] = ("standard",),
    ) -> None:
        self.workdir = str(workdir)
        self._cluster_args: dict[str, Any] = dict(
            images=images, nodes=nodes, schema_validation=schema_validation, storage_classes=storage_classes
        )
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="fake-kube-api", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.url = ""
        self.cluster: Cluster

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> FakeKubernetes:
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("fake Kubernetes API server did not start")
        if self._error:
            raise RuntimeError("fake Kubernetes API server failed") from self._error
        return self

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self.cluster = Cluster(workdir=self.workdir, **self._cluster_args)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            create_app(self.cluster), log_level="warning", lifespan="off", timeout_graceful_shutdown=1,
            backlog=2048, limit_concurrency=None, access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._server.config.setup_event_loop = lambda: None  # type: ignore[method-assign]
        self.loop.call_soon(self._ready.set)
        await self._server.serve(sockets=[sock])
        await self._kill_all()

    async def _kill_all(self) -> None:
        runs = list(self.cluster.kubelet.runs.values())
        for run in runs:
            if run.task:
                run.task.cancel()
        await asyncio.gather(*(r.container.terminate(0) for r in runs if r.container), return_exceptions=True)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self.call(lambda: self.cluster.store.end_watches())
        self._server.should_exit = True
        self._thread.join(30)

    def __enter__(self) -> FakeKubernetes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- client configuration -----------------------------------------------------------------------------
    def configuration(self) -> Any:
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.url
        return cfg

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> str:
        """A kubeconfig the unmodified client (``config.load_kube_config``) accepts."""
        text = f"""apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {self.url}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: {namespace}
current-context: fake
users:
- name: fake
  user:
    token: fake-token
"""
        Path(path).write_text(text)
        return str(path)

    # -- test knobs (thread-safe: they run on the server's loop) --------------------------------------------
    def call(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def watch_stats(self, resource: str) -> WatchStats:
        return self.call(lambda: WatchStats(**vars(self.cluster.store.stats[resource])))

    def objects(self, resource: str, namespace: str | None = "default") -> list[Obj]:
        return self.call(
            lambda: [o for o in self.cluster.store.objects[resource].values()
                     if namespace is None or o["metadata"].get("namespace") == namespace]
        )

    def pause_watches(self) -> None:
        """Close every open watch and hold new ones until :meth:`resume_watches` (a network partition)."""

        def go() -> None:
            self.cluster.watch_gate.clear()
            self.cluster.store.end_watches()

        self.call(go)

    def compact(self) -> None:
        """Forget history: a watch resumed from any older resourceVersion gets ``410 Gone``."""
        self.call(lambda: self.cluster.store.compact())

    def resume_watches(self) -> None:
        self.call(self.cluster.watch_gate.set)

    def add_image(self, image: FakeImage) -> None:
        self.call(lambda: self.cluster.images.__setitem__(image.name, image))

    def set_nodes(self, nodes: list[FakeNode]) -> None:
        self.call(lambda: setattr(self.cluster, "nodes", list(nodes)))

    def create(self, resource: str, namespace: str | None, body: Obj) -> Obj:
        return self.call(lambda: self.cluster.create(resource, namespace, body))
