"""What the hub's account must be allowed to do, checked once at startup.

The spawner needs a handful of verbs (``needed``); ``examples/k8s/base/hub-rbac.yaml`` grants exactly these,
and the tests hold the two together. Asking the API server up front (SelfSubjectAccessReview, which every
authenticated account may do) turns a missing verb into one startup error naming it, rather than a spawn
that fails later, or a watch that retries forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import KubeSpawnerConfig


@dataclass(frozen=True)
class Need:
    verb: str
    resource: str
    why: str
    subresource: str = ""
    group: str = ""

    @property
    def rule(self) -> str:
        res = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return f"{self.verb} {res}" + (f" ({self.group})" if self.group else "")


def needed(cfg: KubeSpawnerConfig) -> list[Need]:
    out = [
        Need("list", "pods", "the shared pod watch lists first"),
        Need("watch", "pods", "the shared pod watch"),
        Need("create", "pods", "starting a server"),
        Need("delete", "pods", "stopping a server, removing orphans"),
        Need("get", "pods", "the server's log in failure messages", subresource="log"),
        Need("list", "events", "the shared event watch lists first"),
        Need("watch", "events", "progress and failure reasons"),
    ]
    if cfg.storage.enabled:
        out.append(Need("create", "persistentvolumeclaims", "a claim per user"))
        if cfg.storage.delete_pvc:
            out.append(Need("delete", "persistentvolumeclaims", "storage.delete_pvc"))
    if cfg.token_secret:
        out += [
            Need("create", "secrets", "the server's token Secret (token_secret)"),
            Need("patch", "secrets", "making the pod the token Secret's owner"),
            Need("delete", "secrets", "removing the token Secret with its server"),
            Need("list", "secrets", "finding token Secrets a killed hub left behind"),
        ]
    if cfg.service:
        out += [
            Need("create", "services", "a Service per server (service = true)"),
            Need("delete", "services", "removing it with its server"),
            Need("list", "services", "finding Services a killed hub left behind"),
        ]
    return out


def review_body(namespace: str, need: Need) -> dict[str, object]:
    attrs = {"namespace": namespace, "verb": need.verb, "group": need.group, "resource": need.resource}
    if need.subresource:
        attrs["subresource"] = need.subresource
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs}}
