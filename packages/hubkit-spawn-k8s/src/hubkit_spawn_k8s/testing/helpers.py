"""Helpers for tests of the kubernetes spawner against a real control plane: a namespace per test whose hub
account has exactly the Role of ``examples/k8s``, the local test image and commands for its containers, specs
and a recording spawn context."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hubkit.interfaces import JSONDict, ProgressEvent, ServerSpec, UserInfo
from hubkit.plugins.registry import HubInfo

from ..config import KubeSpawnerConfig
from .binaries import repo_root
from .controlplane import ControlPlane

# A server for spawner tests that costs next to nothing: answers 200 with JSON under its prefix (so the
# readiness probe passes) and says who it is and a hash of the token it got, so a test sees the env arrive.
TINY_SERVER_SCRIPT = r"""
import hashlib, http.server, json, os, urllib.parse
url = urllib.parse.urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
prefix = os.environ["JUPYTERHUB_SERVICE_PREFIX"]
token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path.startswith(prefix)
        body = json.dumps({"user": os.environ.get("JUPYTERHUB_USER"), "path": self.path,
                           "token_sha256": hashlib.sha256(token.encode()).hexdigest()}).encode()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print("tiny server on", url.hostname, url.port, flush=True)
http.server.ThreadingHTTPServer((url.hostname, url.port), Handler).serve_forever()
"""
TINY_SERVER = ["python", "-c", TINY_SERVER_SCRIPT]
CRASH = ["python", "-c", "print('boom', flush=True); raise SystemExit(3)"]
OOM = ["python", "-c", "x = bytearray(512 * 1024 * 1024); import time; time.sleep(600)"]
MISSING_IMAGE = "registry.invalid/nobody/missing:0"  # .invalid never resolves: the pull fails at once


def slow_server(seconds: float) -> list[str]:
    """The tiny server, started only after ``seconds`` (a pod that stays "starting" that long)."""
    return ["sh", "-c", f'sleep {seconds}; exec python -c "$0"', TINY_SERVER_SCRIPT]


def test_image() -> str | None:
    """The single-user image ``.ci/setup/docker.sh`` built (``HUBKIT_TEST_IMAGE`` overrides), if the engine has it."""
    tag = os.environ.get("HUBKIT_TEST_IMAGE", "")
    root = repo_root()
    tag_file = root / ".cache" / "docker" / "image-tag" if root else None
    if not tag and tag_file is not None and tag_file.exists():
        tag = tag_file.read_text().strip()
    tag = tag or "hubkit-test-singleuser:latest"
    try:
        out = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return tag if out.returncode == 0 else None


def example_rbac() -> list[dict[str, Any]]:
    root = repo_root()
    assert root is not None, "the examples live in the repository"
    return [d for d in yaml.safe_load_all((root / "examples/k8s/base/hub-rbac.yaml").read_text()) if d]


@dataclass
class Namespace:
    """A namespace of its own for one test, with the example's hub ServiceAccount, Role and RoleBinding."""

    cluster: ControlPlane
    name: str
    kubeconfig: Path  # the hub's: the ServiceAccount's token, nothing more

    @classmethod
    def create(cls, cluster: ControlPlane, workdir: Path, *, role_rules: list[dict[str, Any]] | None = None,
               prefix: str = "t") -> Namespace:
        name = f"{prefix}-{secrets.token_hex(4)}"
        cluster.ensure_namespace(name)
        for doc in example_rbac():
            doc = json.loads(json.dumps(doc))
            doc["metadata"]["namespace"] = name
            if doc["kind"] == "RoleBinding":
                for subject in doc["subjects"]:
                    subject["namespace"] = name
            if doc["kind"] == "Role" and role_rules is not None:
                doc["rules"] = role_rules
            cluster.apply(doc)
        kubeconfig = cluster.service_account_kubeconfig(workdir / f"{name}.kubeconfig", name, "hubkit-hub")
        return cls(cluster, name, kubeconfig)

    def delete(self) -> None:
        self.cluster.request("DELETE", f"/api/v1/namespaces/{self.name}")

    def objects(self, resource: str, selector: str = "") -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/{self.name}/{resource}" + (f"?labelSelector={selector}" if selector else "")
        return list(self.cluster.ok("GET", path)["items"])

    def names(self, resource: str) -> list[str]:
        return sorted(o["metadata"]["name"] for o in self.objects(resource))


def hub_info(hub_id: str = "testhub") -> HubInfo:
    return HubInfo(hub_id=hub_id, data_dir=".", hub_api_url="http://127.0.0.1:8081/hub/api",
                   hub_url="http://127.0.0.1:8081", public_url="http://127.0.0.1:8000")


def make_config(ns: Namespace, image: str, **overrides: Any) -> KubeSpawnerConfig:
    """The spawner in ``ns`` under its least-privilege account: host network on this machine (the node),
    the tiny server in the local test image, a claim per user from the default StorageClass."""
    raw: dict[str, Any] = {
        "kubeconfig": str(ns.kubeconfig), "namespace": ns.name, "image": image, "image_pull_policy": "IfNotPresent",
        "cmd": TINY_SERVER, "host_network": True, "watch_timeout": 30, "start_timeout": 120, "stop_wait": 60,
        "storage": {"delete_pvc": True}, "delete_grace_period": 1,
    }
    raw.update(overrides)
    return KubeSpawnerConfig.model_validate(raw)


def make_spec(user: str = "alice", server: str = "", groups: tuple[str, ...] = (), **kw: Any) -> ServerSpec:
    prefix = f"/user/{user}/" + (f"{server}/" if server else "")
    token = kw.pop("api_token", secrets.token_hex(16))
    env = {"JUPYTERHUB_USER": user, "JUPYTERHUB_SERVICE_PREFIX": prefix, "JUPYTERHUB_API_TOKEN": token,
           "JPY_API_TOKEN": token, "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api",
           "JUPYTERHUB_SERVER_NAME": server}
    return ServerSpec(user=UserInfo(user, groups=groups), server_name=server, server_id=1, url_prefix=prefix,
                      hub_api_url="http://127.0.0.1:8081/hub/api", env=env, api_token=token, hub_id="testhub",
                      **kw)


class Ctx:
    """A SpawnContext that records what the backend reports (and can look at the cluster when saving)."""

    def __init__(self, on_save: Callable[[JSONDict], None] | None = None) -> None:
        self.events: list[ProgressEvent] = []
        self.states: list[JSONDict] = []
        self.on_save = on_save

    async def emit(self, event: ProgressEvent) -> None:
        self.events.append(event)

    async def save_state(self, state: JSONDict) -> None:
        if self.on_save:
            self.on_save(dict(state))
        self.states.append(dict(state))

    def messages(self) -> list[str]:
        return [e.message for e in self.events]
