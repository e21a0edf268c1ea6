"""examples/k8s validates against the Kubernetes OpenAPI schemas, its hubkit.toml loads through the hub's
config loader with the real plugins, and the Role grants what the spawner calls and nothing more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hubkit.config.loader import load_settings
from hubkit.interfaces import ServerSpec, UserInfo
from hubkit.plugins.registry import BackendRegistry
from hubkit.runtime.backends import validate_backend_config
from hubkit_spawn_k8s import objects, profiles

BASE = Path(__file__).resolve().parents[2] / "examples" / "k8s" / "base"
VERSION = "1.32"


def documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(BASE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


DOCS = documents()


@pytest.mark.parametrize("doc", [d for _, d in DOCS], ids=[n for n, _ in DOCS])
def test_manifest_validates(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kust = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert sorted(kust["resources"]) == sorted(p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")
    kinds = {d["kind"] for _, d in DOCS}
    assert {"Deployment", "StatefulSet", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Secret",
            "PersistentVolumeClaim", "Service", "Ingress"} <= kinds
    proxy = next(d for _, d in DOCS if d["metadata"]["name"] == "hubkit-proxy" and d["kind"] == "StatefulSet")
    assert proxy["spec"]["replicas"] >= 2


def _by_kind(kind: str, name: str) -> dict[str, Any]:
    return next(d for _, d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name)


def test_role_is_least_privilege_and_sufficient() -> None:
    role = _by_kind("Role", "hubkit-hub")
    granted = {(res, verb) for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]}
    assert all(rule["apiGroups"] == [""] for rule in role["rules"])
    # what hubkit_spawn_k8s calls (create/delete pods, list+watch pods and events, claims, services, logs)
    needed = {("pods", "create"), ("pods", "delete"), ("pods", "get"), ("pods", "list"), ("pods", "watch"),
              ("pods/log", "get"), ("persistentvolumeclaims", "create"), ("services", "create"),
              ("services", "delete"), ("events", "list"), ("events", "watch")}
    assert needed <= granted
    assert not any(verb in ("*", "update", "patch", "deletecollection") for _, verb in granted)
    assert not any(res in ("*", "secrets", "configmaps") for res, _ in granted)


def _settings() -> Any:
    cm = _by_kind("ConfigMap", "hubkit-config")
    path = BASE.parent / ".hubkit-example.toml"
    path.write_text(cm["data"]["hubkit.toml"])
    try:
        env = {"HUBKIT_AUTH__GITHUB__CLIENT_SECRET": "s", "HUBKIT_CRYPT_KEY": "k", "CONFIGPROXY_AUTH_TOKEN": "t"}
        return load_settings(path, env=env)
    finally:
        path.unlink()


def test_configmap_config_loads_with_the_real_plugins() -> None:
    from hubkit_oauth import plugin as oauth_plugin
    from hubkit_proxy import plugin as proxy_plugin
    from hubkit_spawn_k8s import plugin as k8s_plugin

    settings = _settings()
    regs: dict[str, BackendRegistry[Any]] = {r: BackendRegistry(r) for r in ("auth", "spawner", "proxy")}
    oauth_plugin.hubkit_register_authenticators(regs["auth"])
    k8s_plugin.hubkit_register_spawners(regs["spawner"])
    proxy_plugin.hubkit_register_proxies(regs["proxy"])
    validate_backend_config(regs["auth"], "github", settings.auth.backends["github"])
    proxy = validate_backend_config(regs["proxy"], "hubkit-proxy", settings.proxy.backends["hubkit-proxy"])
    assert proxy.should_start is False and len(proxy.replicas) == 1
    k8s = validate_backend_config(regs["spawner"], "kubernetes", settings.spawner.backends["kubernetes"])
    assert [p.slug for p in k8s.profiles] == ["small", "large", "gpu"]

    # the pods this config makes, for every profile, validate too (and the GPU one only for its group)
    for slug, groups in (("small", ()), ("large", ()), ("gpu", ("my-org:ml",))):
        user = UserInfo("octocat", groups=groups)
        plan = profiles.plan_for(k8s, user, {"profile": slug})
        spec = ServerSpec(user=user, server_name="", server_id=1, url_prefix="/user/octocat/",
                          hub_api_url="http://hubkit-hub:8081/hub/api", env={"JUPYTERHUB_USER": "octocat"})
        srv = objects.ServerNames.for_spec(k8s, spec)
        pod = objects.build_pod(k8s, spec, plan, srv)
        kubernetes_validate.validate(pod, VERSION, strict=True)
        assert pod["spec"]["serviceAccountName"] == "hubkit-user"
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        kubernetes_validate.validate(objects.build_pvc(k8s, spec, srv), VERSION, strict=True)
