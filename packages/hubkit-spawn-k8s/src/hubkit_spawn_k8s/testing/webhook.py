"""An admission webhook that calls ``on_arrival`` the moment a chosen create request reaches the API server,
before letting it through: with ``on_arrival`` freezing a :class:`.netgate.NetGate` the object is created but
its creator never hears of it, the exact moment to kill a hub between "asked the cluster to create X" and
"learnt that X exists". (Holding the request in the webhook instead would not do: when the client dies, the
API server cancels the request and creates nothing.)"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .controlplane import ControlPlane, _openssl
from .httpd import JSONHandler


def serving_cert(cp: ControlPlane, d: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by the control plane's CA (the API server trusts it via caBundle)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "hook.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "hook.key", cwd=d)
    _openssl("req", "-new", "-key", "hook.key", "-subj", "/CN=hubkit-test-webhook", "-out", "hook.csr", cwd=d)
    _openssl("x509", "-req", "-in", "hook.csr", "-CA", str(cp.pki / "ca.crt"), "-CAkey", str(cp.pki / "ca.key"),
             "-CAcreateserial", "-days", "30", "-extfile", "hook.ext", "-out", "hook.crt", cwd=d)
    return d / "hook.crt", d / "hook.key"


class ArrivalWebhook:
    """Sees CREATE of ``resource`` in namespace ``namespace``, calls ``on_arrival``, then allows it. Dry runs
    (which probe that the API server calls the webhook) do not count."""

    def __init__(self, cp: ControlPlane, workdir: Path, namespace: str, resource: str,
                 on_arrival: Callable[[], None]) -> None:
        self.cp, self.namespace, self.resource = cp, namespace, resource
        self.on_arrival = on_arrival
        self.name = f"hubkit-test-arrival-{secrets.token_hex(3)}"
        self.arrived = threading.Event()
        self.active = threading.Event()  # a dry-run probe passed through: the API server calls us
        self.seen: list[str] = []
        self.removed = False
        cert, key = serving_cert(cp, workdir / self.name)
        hook = self

        class Handler(JSONHandler):
            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                req = review["request"]
                if req.get("dryRun"):
                    hook.active.set()
                else:
                    hook.seen.append(str((req.get("object") or {}).get("metadata", {}).get("name") or req.get("name")))
                    hook.on_arrival()
                    hook.arrived.set()
                self.reply({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                            "response": {"uid": req["uid"], "allowed": True}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True, name=self.name).start()

    def install(self) -> None:
        label = {"hubkit-test-gate": self.name}
        self.cp.ok("PATCH", f"/api/v1/namespaces/{self.namespace}", {"metadata": {"labels": label}},
                   content_type="application/merge-patch+json")
        self.cp.ok("POST", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": self.name},
            "webhooks": [{
                "name": f"{self.name}.hubkit.test",
                "clientConfig": {"url": f"https://127.0.0.1:{self.port}/arrival",
                                 "caBundle": base64.b64encode(self.cp.ca.read_bytes()).decode()},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                           "resources": [self.resource]}],
                "namespaceSelector": {"matchLabels": label},
                "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
            }],
        })
        # the API server picks the configuration up asynchronously: probe with dry runs until it calls us
        probe: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod" if self.resource == "pods" else "Secret",
                 "metadata": {"name": "hubkit-gate-probe"}}
        if self.resource == "pods":
            probe["spec"] = {"containers": [{"name": "c", "image": "probe"}]}
        for _ in range(100):
            self.cp.request("POST", f"/api/v1/namespaces/{self.namespace}/{self.resource}?dryRun=All", probe)
            if self.active.wait(0.1):
                return
        raise RuntimeError("the API server never called the webhook")

    def remove(self) -> None:
        if self.removed:
            return
        self.removed = True
        self.cp.request("DELETE", f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{self.name}")
        self.server.shutdown()
        self.server.server_close()
