"""Manifests (plain dicts in API shape) for a server's pod, its token Secret, its user's claim and its
optional Service."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hubkit.interfaces import ServerSpec

from . import names
from .config import KubeSpawnerConfig

Obj = dict[str, Any]


@dataclass(frozen=True)
class PodPlan:
    """The effective choices for one server after profiles and user options were applied."""

    image: str
    cpu_request: str | None = None
    cpu_limit: str | None = None
    mem_request: str | None = None
    mem_limit: str | None = None
    extra_resource_limits: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    affinity: dict[str, Any] | None = None
    profile: str = ""


@dataclass(frozen=True)
class ServerNames:
    pod: str
    pvc: str | None
    service: str | None
    namespace: str
    secret: str | None = None

    @classmethod
    def for_spec(cls, cfg: KubeSpawnerConfig, spec: ServerSpec) -> ServerNames:
        pod = names.render(cfg.pod_name_template, spec.user.name, spec.server_name)
        pvc = names.render(cfg.storage.pvc_name_template, spec.user.name) if cfg.storage.enabled else None
        secret = f"{pod}-token" if cfg.token_secret else None
        return cls(pod=pod, pvc=pvc, service=pod if cfg.service else None, namespace=cfg.namespace, secret=secret)


def labels(spec: ServerSpec, cfg: KubeSpawnerConfig) -> dict[str, str]:
    return {
        **cfg.extra_labels,
        "app.kubernetes.io/name": "hubkit-singleuser",
        "app.kubernetes.io/managed-by": "hubkit",
        names.LABEL_HUB: names.label_value(spec.hub_id),
        names.LABEL_USER: names.label_value(spec.user.name),
        names.LABEL_SERVER: names.label_value(spec.server_name),
        names.LABEL_COMPONENT: names.COMPONENT,
    }


def object_annotations(spec: ServerSpec, cfg: KubeSpawnerConfig, plan: PodPlan | None = None) -> dict[str, str]:
    out = {**cfg.extra_annotations, names.ANNOTATION_USER: spec.user.name, names.ANNOTATION_SERVER: spec.server_name}
    if plan and plan.profile:
        out["hubkit.io/profile"] = plan.profile
    return out


def _resources(plan: PodPlan) -> Obj:
    requests = {k: v for k, v in (("cpu", plan.cpu_request), ("memory", plan.mem_request)) if v}
    limits = {k: v for k, v in (("cpu", plan.cpu_limit), ("memory", plan.mem_limit)) if v}
    limits.update(plan.extra_resource_limits)
    out: Obj = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def secret_keys(spec: ServerSpec) -> list[str]:
    """The environment variables that carry the server's hub token (``JUPYTERHUB_API_TOKEN``, ``JPY_API_TOKEN``)."""
    if not spec.api_token:
        return []
    return sorted(k for k, v in spec.env.items() if v == spec.api_token)


def _env(cfg: KubeSpawnerConfig, spec: ServerSpec, plan: PodPlan, srv: ServerNames, port: int) -> list[Obj]:
    # all interfaces of the pod (the hub connects to its IP), or the node's loopback with host_network
    env = spec.env_with_url(cfg.host_network_ip if cfg.host_network else "0.0.0.0", port)
    env.update(cfg.extra_env)
    for key, value in (("MEM_LIMIT", plan.mem_limit), ("MEM_GUARANTEE", plan.mem_request),
                       ("CPU_LIMIT", plan.cpu_limit), ("CPU_GUARANTEE", plan.cpu_request)):
        if value:
            env[key] = value
    env.setdefault("JUPYTER_IMAGE", plan.image)
    env.setdefault("JUPYTER_IMAGE_SPEC", plan.image)
    hidden = set(secret_keys(spec)) if srv.secret else set()
    return [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": srv.secret, "key": k}}}
        if k in hidden and v == spec.api_token else {"name": k, "value": v}
        for k, v in sorted(env.items())
    ]


def build_secret(cfg: KubeSpawnerConfig, spec: ServerSpec, srv: ServerNames) -> Obj:
    """The server's hub token, for the pod's env. The spawner makes the pod its owner once the pod exists."""
    assert srv.secret
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": srv.secret,
            "namespace": srv.namespace,
            "labels": labels(spec, cfg),
            "annotations": object_annotations(spec, cfg),
        },
        "stringData": {k: spec.api_token for k in secret_keys(spec)},
    }


def owner_reference(pod: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}


def build_pod(cfg: KubeSpawnerConfig, spec: ServerSpec, plan: PodPlan, srv: ServerNames, port: int | None = None) -> Obj:
    command = list(spec.cmd) or list(cfg.cmd)
    port = port or cfg.port
    container: Obj = {
        "name": cfg.container_name,
        "image": plan.image,
        "imagePullPolicy": cfg.image_pull_policy,
        "env": _env(cfg, spec, plan, srv, port),
        "ports": [{"name": "notebook-port", "containerPort": port, "protocol": "TCP"}],
        "resources": _resources(plan),
        "securityContext": {
            "allowPrivilegeEscalation": cfg.allow_privilege_escalation,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": list(cfg.extra_volume_mounts),
    }
    if cfg.readiness_probe:
        container["readinessProbe"] = {
            "httpGet": {"path": f"{spec.url_prefix}api", "port": port, "scheme": "HTTP",
                        **({"host": cfg.host_network_ip} if cfg.host_network else {})},
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        }
    if command:
        container["command"] = command
    if spec.args:
        container["args"] = list(spec.args)
    if cfg.working_dir:
        container["workingDir"] = cfg.working_dir
    volumes = list(cfg.extra_volumes)
    if srv.pvc:
        volumes.append({"name": "home", "persistentVolumeClaim": {"claimName": srv.pvc}})
        container["volumeMounts"].append({"name": "home", "mountPath": cfg.storage.mount_path})
    pod_sc: Obj = {"runAsNonRoot": cfg.run_as_non_root, "seccompProfile": {"type": "RuntimeDefault"}}
    for key, value in (("runAsUser", cfg.run_as_uid), ("runAsGroup", cfg.run_as_gid), ("fsGroup", cfg.fs_gid)):
        if value is not None:
            pod_sc[key] = value
    pod_spec: Obj = {
        "containers": [container],
        "restartPolicy": cfg.restart_policy,
        "securityContext": pod_sc,
        "automountServiceAccountToken": cfg.automount_service_account_token,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": max(cfg.delete_grace_period, 1),
        "volumes": volumes,
    }
    if cfg.host_network:
        pod_spec["hostNetwork"] = True
        container["ports"][0]["hostPort"] = port  # the scheduler keeps two servers off one port of a node
    if plan.node_selector:
        pod_spec["nodeSelector"] = dict(plan.node_selector)
    if plan.tolerations:
        pod_spec["tolerations"] = list(plan.tolerations)
    if plan.affinity:
        pod_spec["affinity"] = plan.affinity
    if cfg.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in cfg.image_pull_secrets]
    if cfg.service_account:
        pod_spec["serviceAccountName"] = cfg.service_account
    if cfg.priority_class_name:
        pod_spec["priorityClassName"] = cfg.priority_class_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": srv.pod,
            "namespace": srv.namespace,
            "labels": labels(spec, cfg),
            "annotations": object_annotations(spec, cfg, plan),
        },
        "spec": pod_spec,
    }


def build_pvc(cfg: KubeSpawnerConfig, spec: ServerSpec, srv: ServerNames) -> Obj:
    assert srv.pvc
    meta_labels = labels(spec, cfg)
    meta_labels.pop(names.LABEL_SERVER)  # the claim is the user's, shared by their servers
    meta_labels[names.LABEL_COMPONENT] = "user-storage"
    pvc_spec: Obj = {
        "accessModes": list(cfg.storage.access_modes),
        "resources": {"requests": {"storage": cfg.storage.capacity}},
    }
    if cfg.storage.storage_class is not None:
        pvc_spec["storageClassName"] = cfg.storage.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": srv.pvc,
            "namespace": srv.namespace,
            "labels": meta_labels,
            "annotations": {**cfg.extra_annotations, names.ANNOTATION_USER: spec.user.name},
        },
        "spec": pvc_spec,
    }


def build_service(cfg: KubeSpawnerConfig, spec: ServerSpec, srv: ServerNames) -> Obj:
    assert srv.service
    selector = {k: v for k, v in labels(spec, cfg).items() if k.startswith("hubkit.io/")}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": srv.service,
            "namespace": srv.namespace,
            "labels": labels(spec, cfg),
            "annotations": object_annotations(spec, cfg),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": cfg.port, "targetPort": cfg.port, "protocol": "TCP"}],
        },
    }
