"""A minimal read-only image registry (Docker Registry HTTP API v2) on 127.0.0.1, for real pulls in tests.

No registry is reachable from the test machine, so tests that need the engine to *pull* an image serve one
here: an image made on the fly (random-content layers, gzipped) that the engine downloads over HTTP like from
any registry. Docker treats 127.0.0.0/8 registries as insecure (plain HTTP) by default.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(name: str, size: int) -> tuple[bytes, str]:
    """A gzipped tar holding one file of random (incompressible) bytes; returns (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = size
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, compresslevel=1), _digest(tar_bytes)


@dataclass
class Image:
    repo: str
    tag: str
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifest: bytes = b""
    layer_sizes: list[int] = field(default_factory=list)

    @classmethod
    def build(cls, repo: str, tag: str, layer_bytes: list[int]) -> Image:
        img = cls(repo, tag)
        layers: list[dict[str, Any]] = []
        diff_ids: list[str] = []
        for i, size in enumerate(layer_bytes):
            blob, diff_id = _layer(f"data{i}.bin", size)
            digest = _digest(blob)
            img.blobs[digest] = blob
            img.layer_sizes.append(len(blob))
            layers.append({"mediaType": LAYER_TYPE, "size": len(blob), "digest": digest})
            diff_ids.append(diff_id)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["/nothing-to-run"]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
                "history": [{"created_by": "hubkit test registry"} for _ in layer_bytes],
            }
        ).encode()
        img.blobs[_digest(config)] = config
        img.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": _digest(config)},
                "layers": layers,
            }
        ).encode()
        return img


class Registry:
    """Serves :class:`Image` objects; ``with Registry(images) as reg: reg.ref(image)``."""

    def __init__(self, images: list[Image], chunk: int = 256 * 1024, chunk_delay: float = 0.0) -> None:
        self.images = {(i.repo, i.tag): i for i in images}
        self.blobs = {d: b for i in images for d, b in i.blobs.items()}
        self.chunk = chunk
        self.chunk_delay = chunk_delay  # slows blob downloads so progress can be seen mid-layer
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, *, body: bool) -> None:
                registry.requests.append(self.path)
                path = self.path.split("?")[0]
                if path in ("/v2/", "/v2"):
                    return self._send(200, b"{}", "application/json", body)
                if "/manifests/" in path:
                    repo, ref = path[len("/v2/") :].rsplit("/manifests/", 1)
                    img = registry.images.get((repo, ref)) or next(
                        (
                            i
                            for i in registry.images.values()
                            if i.repo == repo and _digest(i.manifest) == ref
                        ),
                        None,
                    )
                    if img is None:
                        return self._send(
                            404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', "application/json", body
                        )
                    return self._send(200, img.manifest, MANIFEST_TYPE, body, digest=_digest(img.manifest))
                if "/blobs/" in path:
                    digest = path.rsplit("/blobs/", 1)[1]
                    blob = registry.blobs.get(digest)
                    if blob is None:
                        return self._send(
                            404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}', "application/json", body
                        )
                    return self._send(200, blob, "application/octet-stream", body, digest=digest)
                return self._send(404, b"{}", "application/json", body)

            def _send(
                self, code: int, data: bytes, ctype: str, body: bool, digest: str | None = None
            ) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                if digest:
                    self.send_header("Docker-Content-Digest", digest)
                self.end_headers()
                if body:
                    for i in range(0, len(data), registry.chunk):
                        self.wfile.write(data[i : i + registry.chunk])
                        self.wfile.flush()
                        if registry.chunk_delay and len(data) > registry.chunk:
                            time.sleep(registry.chunk_delay)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def ref(self, image: Image) -> str:
        return f"127.0.0.1:{self.port}/{image.repo}:{image.tag}"

    def __enter__(self) -> Registry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
