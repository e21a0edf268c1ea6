"""The fake cluster: store + nodes + image registry + scheduler + kubelet, and the failure knobs tests use."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from .kubelet import Kubelet
from .quantity import parse_quantity
from .runtime import FakeImage
from .status import ApiError
from .store import Obj, Store, now_iso

__all__ = ["Cluster", "FakeImage", "FakeNode"]


@dataclass(frozen=True)
class FakeNode:
    name: str
    cpu: str = "1000"
    memory: str = "4Ti"
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()  # {"key","value","effect"}


@dataclass
class Timing:
    schedule: float = 0.02
    pull: float = 0.02
    backoff: float = 0.2
    retry_schedule: float = 0.5
    probe: float = 0.1  # readiness probe period (real: periodSeconds)


class Cluster:
    def __init__(
        self,
        *,
        nodes: list[FakeNode] | None = None,
        images: list[FakeImage] | None = None,
        storage_classes: tuple[str, ...] = ("standard",),
        default_storage_class: str | None = "standard",
        schema_validation: bool = True,
        workdir: str,
    ) -> None:
        self.store = Store()
        self.nodes = nodes or [FakeNode("fake-node-1")]
        self.images = {i.name: i for i in images or []}
        self.storage_classes = set(storage_classes)
        self.default_storage_class = default_storage_class
        self.schema_validation = schema_validation
        self.timing = Timing()
        self.bookmark_interval = 5.0
        self.watch_gate = asyncio.Event()
        self.watch_gate.set()
        self.kubelet = Kubelet(self, workdir)
        for ns in ("default", "kube-system"):
            self.store.create("namespaces", None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # -- API-level operations with side effects ----------------------------------------------------------
    def create(self, resource: str, namespace: str | None, body: Obj) -> Obj:
        if resource == "pods":
            spec = body.setdefault("spec", {})
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            spec.setdefault("schedulerName", "default-scheduler")
            body["status"] = {"phase": "Pending", "qosClass": _qos(spec)}
        if resource == "persistentvolumeclaims":
            spec = body.setdefault("spec", {})
            if spec.get("storageClassName") is None and self.default_storage_class:
                spec["storageClassName"] = self.default_storage_class
            body["status"] = {"phase": "Pending"}
        if resource == "namespaces":
            body["status"] = {"phase": "Active"}
        obj = self.store.create(resource, namespace, body)
        if resource == "persistentvolumeclaims" and obj["spec"].get("storageClassName") in self.storage_classes:
            obj = self.store.update(resource, namespace, obj["metadata"]["name"], _bind_pvc)
        if resource == "pods":
            self.kubelet.admit(obj)
        return obj

    def delete(self, resource: str, namespace: str | None, name: str, grace: int | None) -> Obj:
        store = self.store
        obj = store.get(resource, namespace, name)
        if resource == "namespaces":
            for r in ("pods", "services", "persistentvolumeclaims", "events"):
                for o in list(store.objects[r].values()):
                    if o["metadata"].get("namespace") == name:
                        self.delete(r, name, o["metadata"]["name"], 0)
            return store.remove(resource, None, name)
        if resource != "pods":
            return store.remove(resource, namespace, name)
        if grace is None:
            grace = int(obj["spec"].get("terminationGracePeriodSeconds", 30))
        if grace < 0:
            raise ApiError(422, "Invalid", "gracePeriodSeconds must be >= 0")
        if grace == 0 or not self.kubelet.has_container(obj):
            self.kubelet.forget(obj, grace=0)
            return store.remove(resource, namespace, name)
        if obj["metadata"].get("deletionTimestamp") and obj["metadata"].get("deletionGracePeriodSeconds", 0) <= grace:
            return obj

        def mark(o: Obj) -> None:
            o["metadata"]["deletionTimestamp"] = now_iso()
            o["metadata"]["deletionGracePeriodSeconds"] = grace

        obj = store.update(resource, namespace, name, mark)
        self.kubelet.forget(obj, grace=grace)
        return obj

    # -- events -------------------------------------------------------------------------------------------
    def event(self, pod: Obj, reason: str, message: str, *, warning: bool = False, component: str = "kubelet") -> None:
        meta = pod["metadata"]
        ns = meta["namespace"]
        if self.store.key("pods", ns, meta["name"]) not in self.store.objects["pods"]:
            return
        stamp = now_iso()
        self.store.create(
            "events",
            ns,
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": ns},
                "involvedObject": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": meta["name"],
                    "namespace": ns,
                    "uid": meta["uid"],
                    "resourceVersion": meta["resourceVersion"],
                },
                "reason": reason,
                "message": message,
                "type": "Warning" if warning else "Normal",
                "source": {"component": component},
                "reportingComponent": component,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            },
        )

    # -- scheduling ---------------------------------------------------------------------------------------
    def schedule(self, pod: Obj) -> tuple[str | None, str]:
        """Pick a node or explain, in the scheduler's words, why none fits."""
        spec = pod["spec"]
        ns = pod["metadata"]["namespace"]
        for vol in spec.get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                pvc = self.store.objects["persistentvolumeclaims"].get((ns, claim))
                if pvc is None:
                    return None, f'0/{len(self.nodes)} nodes are available: persistentvolumeclaim "{claim}" not found.'
                if pvc["status"].get("phase") != "Bound":
                    return None, f"0/{len(self.nodes)} nodes are available: pod has unbound immediate PersistentVolumeClaims."
        want_cpu, want_mem = _requests(spec)
        reasons: dict[str, int] = {}
        for node in self.nodes:
            why = self._unfit(node, pod, want_cpu, want_mem)
            if why is None:
                return node.name, ""
            reasons[why] = reasons.get(why, 0) + 1
        detail = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
        return None, f"0/{len(self.nodes)} nodes are available: {detail}. preemption: 0/{len(self.nodes)} nodes are available."

    def _unfit(self, node: FakeNode, pod: Obj, cpu: Any, mem: Any) -> str | None:
        spec = pod["spec"]
        selector = dict(spec.get("nodeSelector") or {})
        if any(node.labels.get(k) != v for k, v in selector.items()) or not _affinity_ok(spec, node.labels):
            return "node(s) didn't match Pod's node affinity/selector"
        for taint in node.taints:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(spec, taint):
                return f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
        used_cpu, used_mem = parse_quantity("0"), parse_quantity("0")
        for other in self.store.objects["pods"].values():
            if other["spec"].get("nodeName") == node.name and other["status"].get("phase") in ("Pending", "Running"):
                c, m = _requests(other["spec"])
                used_cpu += c
                used_mem += m
        if used_mem + mem > parse_quantity(node.memory):
            return "Insufficient memory"
        if used_cpu + cpu > parse_quantity(node.cpu):
            return "Insufficient cpu"
        return None


def _bind_pvc(o: Obj) -> None:
    o["spec"]["volumeName"] = f"pvc-{o['metadata']['uid']}"
    o["status"] = {
        "phase": "Bound",
        "accessModes": o["spec"].get("accessModes", ["ReadWriteOnce"]),
        "capacity": {"storage": o["spec"].get("resources", {}).get("requests", {}).get("storage", "1Gi")},
    }


def _requests(spec: Obj) -> tuple[Any, Any]:
    cpu, mem = parse_quantity("0"), parse_quantity("0")
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        req = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        cpu += parse_quantity(req.get("cpu", "0"))
        mem += parse_quantity(req.get("memory", "0"))
    return cpu, mem


def _qos(spec: Obj) -> str:
    res = [c.get("resources") or {} for c in spec.get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in res):
        return "BestEffort"
    if all((r.get("limits") or {}).get(k) and (r.get("requests") or r.get("limits") or {}).get(k) == r["limits"][k]
           for r in res for k in ("cpu", "memory")):
        return "Guaranteed"
    return "Burstable"


def _tolerates(spec: Obj, taint: dict[str, str]) -> bool:
    for tol in spec.get("tolerations") or []:
        if tol.get("effect") not in (None, "", taint.get("effect")):
            continue
        if tol.get("operator") == "Exists" and tol.get("key") in (None, "", taint["key"]):
            return True
        if tol.get("key") == taint["key"] and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def _affinity_ok(spec: Obj, labels: dict[str, str]) -> bool:
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", {})
        .get("nodeSelectorTerms")
    )
    if not required:
        return True
    for term in required:
        ok = True
        for expr in term.get("matchExpressions") or []:
            key, op, values = expr["key"], expr["operator"], expr.get("values") or []
            have = labels.get(key)
            ok = ok and {
                "In": have in values,
                "NotIn": have not in values,
                "Exists": key in labels,
                "DoesNotExist": key not in labels,
            }.get(op, False)
        if ok:
            return True
    return False
