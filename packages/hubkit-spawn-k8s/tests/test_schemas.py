"""Everything the spawner creates validates against the Kubernetes OpenAPI schemas (kubernetes-validate)."""

from __future__ import annotations

import kubernetes_validate
import pytest
from hubkit_spawn_k8s import objects, profiles
from hubkit_spawn_k8s.config import KubeSpawnerConfig
from hubkit_spawn_k8s.testing.helpers import make_spec

VERSION = "1.32"

FULL = KubeSpawnerConfig.model_validate(
    {
        "namespace": "hub",
        "image_pull_secrets": ["regcred"],
        "service_account": "notebook",
        "cpu_request": "250m", "cpu_limit": "2", "mem_request": "1Gi", "mem_limit": "4Gi",
        "extra_resource_limits": {"nvidia.com/gpu": "1"},
        "node_selector": {"hub.jupyter.org/node-purpose": "user"},
        "tolerations": [{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user",
                         "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
        "extra_labels": {"team": "data"},
        "extra_annotations": {"example.org/owner": "platform"},
        "extra_volumes": [{"name": "shared", "configMap": {"name": "shared-notebooks"}}],
        "extra_volume_mounts": [{"name": "shared", "mountPath": "/home/jovyan/shared", "readOnly": True}],
        "working_dir": "/home/jovyan",
        "priority_class_name": "user-pods",
        "service": True,
        "storage": {"storage_class": "fast-ssd", "capacity": "20Gi"},
    }
)


def _validate(obj: dict) -> None:  # type: ignore[type-arg]
    kubernetes_validate.validate(obj, VERSION, strict=True)


@pytest.mark.parametrize("user", ["alice", "Zoë O'Brien@example.org", "a" * 80])
@pytest.mark.parametrize("server", ["", "My Notebook"])
def test_spawner_objects_validate(user: str, server: str) -> None:
    spec = make_spec(user, server)
    srv = objects.ServerNames.for_spec(FULL, spec)
    plan = profiles.plan_for(FULL, spec.user, {})
    _validate(objects.build_pod(FULL, spec, plan, srv))
    _validate(objects.build_pvc(FULL, spec, srv))
    _validate(objects.build_service(FULL, spec, srv))
    assert len(srv.pod) <= 63 and srv.pod[0].isalpha()


def test_schema_check_is_real() -> None:
    spec = make_spec("alice")
    pod = objects.build_pod(FULL, spec, profiles.plan_for(FULL, spec.user, {}), objects.ServerNames.for_spec(FULL, spec))
    pod["spec"]["containers"][0]["resources"]["limits"]["memory"] = {"not": "a quantity"}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(pod)


def test_names_are_distinct_and_safe() -> None:
    from hubkit_spawn_k8s import names

    assert names.render("hubkit-{user}{server}", "alice") == "hubkit-alice"
    assert names.render("hubkit-{user}{server}", "alice", "nb1") == "hubkit-alice--nb1"
    assert names.render("hubkit-{user}{server}", "Alice") != names.render("hubkit-{user}{server}", "alice")
    assert names.render("hubkit-{user}{server}", "alice-nb1") != names.render("hubkit-{user}{server}", "alice", "nb1")
    assert names.label_value("Zoë") != names.label_value("Zoe")
