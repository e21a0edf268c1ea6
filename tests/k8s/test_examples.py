"""examples/k8s applied for real: Debian's kubectl (kubernetes-client, the same 1.20 as the control plane)
renders the kustomization and applies it to the real API server (server-side dry run, then server-side
apply), and what it made is consistent. Kubernetes 1.20 is old, so the manifests and the spawner's objects
are also checked against a current version's OpenAPI schemas (kubernetes-validate)."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hubkit.config.loader import load_settings
from hubkit.interfaces import ServerSpec, UserInfo
from hubkit.plugins.registry import BackendRegistry
from hubkit.runtime.backends import validate_backend_config
from hubkit_spawn_k8s import access, objects, profiles
from hubkit_spawn_k8s.testing import ControlPlane

BASE = Path(__file__).resolve().parents[2] / "examples" / "k8s" / "base"
SCHEMA_VERSION = "1.32"  # checked by schema only; the live checks below run on the control plane's version


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


def _by_kind(kind: str, name: str, docs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return next(d for d in (docs or [d for _, d in DOCS]) if d["kind"] == kind and d["metadata"]["name"] == name)


def kubectl(cluster: ControlPlane, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(cluster.bin / "kubectl"), f"--kubeconfig={cluster.kubeconfig}", *args],
                         capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out


# ---- schema check for a current Kubernetes -----------------------------------------------------------------------

@pytest.mark.parametrize("doc", [d for _, d in DOCS], ids=[n for n, _ in DOCS])
def test_manifest_validates_against_a_current_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, SCHEMA_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kust = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert sorted(kust["resources"]) == sorted(p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")
    proxy = _by_kind("Deployment", "hubkit-proxy")
    assert proxy["spec"]["replicas"] >= 2


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
    from hubkit_spawn_k8s.proxy_replicas import EndpointSliceOptions

    settings = _settings()
    regs: dict[str, BackendRegistry[Any]] = {r: BackendRegistry(r) for r in ("auth", "spawner", "proxy")}
    oauth_plugin.hubkit_register_authenticators(regs["auth"])
    k8s_plugin.hubkit_register_spawners(regs["spawner"])
    proxy_plugin.hubkit_register_proxies(regs["proxy"])
    validate_backend_config(regs["auth"], "github", settings.auth.backends["github"])
    proxy = validate_backend_config(regs["proxy"], "hubkit-proxy", settings.proxy.backends["hubkit-proxy"])
    assert proxy.should_start is False and proxy.discovery == "kubernetes"
    opts = EndpointSliceOptions.model_validate(proxy.discovery_options)
    svc = _by_kind("Service", opts.service)
    assert svc["spec"]["clusterIP"] == "None" and opts.port_name in [p["name"] for p in svc["spec"]["ports"]]
    k8s = validate_backend_config(regs["spawner"], "kubernetes", settings.spawner.backends["kubernetes"])
    assert [p.slug for p in k8s.profiles] == ["small", "large", "gpu"]
    assert k8s.token_secret and k8s.storage.delete_pvc

    # the pods this config makes, for every profile, validate too (and the GPU one only for its group)
    for slug, groups in (("small", ()), ("large", ()), ("gpu", ("my-org:ml",))):
        user = UserInfo("octocat", groups=groups)
        plan = profiles.plan_for(k8s, user, {"profile": slug})
        spec = ServerSpec(user=user, server_name="", server_id=1, url_prefix="/user/octocat/",
                          hub_api_url="http://hubkit-hub:8081/hub/api", api_token="t0k",
                          env={"JUPYTERHUB_USER": "octocat", "JUPYTERHUB_API_TOKEN": "t0k"})
        srv = objects.ServerNames.for_spec(k8s, spec)
        pod = objects.build_pod(k8s, spec, plan, srv)
        kubernetes_validate.validate(pod, SCHEMA_VERSION, strict=True)
        assert pod["spec"]["serviceAccountName"] == "hubkit-user"
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        kubernetes_validate.validate(objects.build_pvc(k8s, spec, srv), SCHEMA_VERSION, strict=True)
        kubernetes_validate.validate(objects.build_secret(k8s, spec, srv), SCHEMA_VERSION, strict=True)


# ---- applied for real ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def applied(cluster: ControlPlane) -> Any:
    """kubectl renders the kustomization, the API server dry-runs it, then applies it (server side)."""
    rendered = [d for d in yaml.safe_load_all(kubectl(cluster, "kustomize", str(BASE)).stdout) if d]
    # a server-side dry run validates namespaced objects only in a namespace that exists: the Namespace first
    kubectl(cluster, "apply", "--server-side", "-f", str(BASE / "namespace.yaml"))
    dry = kubectl(cluster, "apply", "-k", str(BASE), "--dry-run=server")
    assert dry.stdout.count("(server dry run)") == len(rendered), dry.stdout
    assert kubectl(cluster, "get", "serviceaccount", "hubkit-hub", "-n", "hubkit", check=False).returncode != 0
    out = kubectl(cluster, "apply", "-k", str(BASE), "--server-side")
    yield rendered, out.stdout
    kubectl(cluster, "delete", "namespace", "hubkit", "--wait=false", check=False)


def test_kubectl_applies_the_example_to_the_api_server(cluster: ControlPlane, applied: Any) -> None:
    rendered, output = applied
    version = kubectl(cluster, "version", "--client", "--short").stdout
    assert cluster.version in version  # Debian's kubectl is the control plane's version
    for doc in rendered:
        kind, name = doc["kind"], doc["metadata"]["name"]
        ns_args = [] if kind in ("Namespace",) else ["-n", "hubkit"]
        got = yaml.safe_load(kubectl(cluster, "get", kind.lower(), name, "-o", "yaml", *ns_args).stdout)
        assert got["metadata"]["labels"]["app.kubernetes.io/part-of"] == "hubkit", (kind, name)
        assert "serverside-applied" in output or f"{name} serverside-applied" in output


def test_applied_objects_are_consistent(cluster: ControlPlane, applied: Any) -> None:
    rendered, _ = applied
    hub = _by_kind("Deployment", "hubkit-hub", rendered)
    proxy = _by_kind("Deployment", "hubkit-proxy", rendered)
    # the hub's account, Role and binding agree
    assert hub["spec"]["template"]["spec"]["serviceAccountName"] == "hubkit-hub"
    binding = _by_kind("RoleBinding", "hubkit-hub", rendered)
    assert binding["roleRef"]["name"] == "hubkit-hub"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hubkit-hub", "namespace": "hubkit"}]
    # every Service selects pods of a Deployment, by a named port those pods have
    for svc_name, dep in (("hubkit-hub", hub), ("hubkit-proxy-public", proxy), ("hubkit-proxy-api", proxy)):
        svc = _by_kind("Service", svc_name, rendered)
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), svc_name
        port_names = {p["name"] for c in dep["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        assert {str(p["targetPort"]) for p in svc["spec"]["ports"]} <= port_names, svc_name
    ingress = _by_kind("Ingress", "hubkit", rendered)
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    public = _by_kind("Service", backend["name"], rendered)
    assert backend["port"]["name"] in [p["name"] for p in public["spec"]["ports"]]
    # the Deployment's volumes and env name objects that exist
    assert {v["configMap"]["name"] for v in hub["spec"]["template"]["spec"]["volumes"] if "configMap" in v} == {
        "hubkit-config"}
    assert _by_kind("Secret", "hubkit-secrets", rendered)
    # the endpoint controller follows the headless proxy Service with EndpointSlices named for it: what the
    # hub's replica discovery watches
    cluster_slices = cluster.ok(
        "GET", "/apis/discovery.k8s.io/v1beta1/namespaces/hubkit/endpointslices"
        "?labelSelector=kubernetes.io/service-name%3Dhubkit-proxy-api")["items"]
    assert cluster_slices, "no EndpointSlice for Service hubkit-proxy-api"


def test_the_applied_hub_account_may_do_exactly_what_the_spawner_needs(cluster: ControlPlane, applied: Any) -> None:
    cm = _by_kind("ConfigMap", "hubkit-config", applied[0])
    from hubkit_spawn_k8s.config import KubeSpawnerConfig

    cfg = KubeSpawnerConfig.model_validate(tomllib.loads(cm["data"]["hubkit.toml"])["spawner"]["kubernetes"])
    who = "--as=system:serviceaccount:hubkit:hubkit-hub"
    for need in access.needed(cfg):
        sub = [f"--subresource={need.subresource}"] if need.subresource else []
        out = kubectl(cluster, "auth", "can-i", need.verb, need.resource, *sub, "-n", "hubkit", who, check=False)
        assert out.stdout.strip() == "yes", (need.rule, out.stdout, out.stderr)
    for verb, res in (("watch", "endpointslices.discovery.k8s.io"), ("list", "endpointslices.discovery.k8s.io")):
        assert kubectl(cluster, "auth", "can-i", verb, res, "-n", "hubkit", who, check=False).stdout.strip() == "yes"
    # and nothing beyond: no reads of Secrets' contents, no other namespace, no cluster scope
    for args in (("get", "secrets"), ("update", "pods"), ("create", "pods", "-n", "default"),
                 ("list", "nodes"), ("create", "roles"), ("get", "configmaps")):
        extra = [] if "-n" in args else ["-n", "hubkit"]
        out = kubectl(cluster, "auth", "can-i", *args, *extra, who, check=False)
        assert out.stdout.strip() == "no", (args, out.stdout)


# ---- the hub-replicas overlay (examples/k8s/ha, docs/deploy-ha.md) -------------------------------------------

HA = BASE.parent / "ha"
HA_OWN = ("hub-pdb.yaml", "db-upgrade-job.yaml")  # the overlay's own objects; the rest are patches


@pytest.mark.parametrize("name", HA_OWN)
def test_ha_overlay_objects_validate_against_a_current_schema(name: str) -> None:
    kubernetes_validate.validate(yaml.safe_load((HA / name).read_text()), SCHEMA_VERSION, strict=True)


def test_ha_overlay_renders_replicas_on_postgresql_and_dry_runs(cluster: ControlPlane, applied: Any) -> None:
    rendered = [d for d in yaml.safe_load_all(kubectl(cluster, "kustomize", str(HA)).stdout) if d]
    hub = _by_kind("Deployment", "hubkit-hub", rendered)
    assert hub["spec"]["replicas"] >= 2
    assert hub["spec"]["strategy"]["type"] == "RollingUpdate"
    assert all("kind" in d for d in rendered), "kustomize rendered an object without a kind"
    volumes = {v["name"]: v for v in hub["spec"]["template"]["spec"]["volumes"]}
    assert "persistentVolumeClaim" not in volumes["data"]  # no replica mounts the SQLite claim
    pdb = _by_kind("PodDisruptionBudget", "hubkit-hub", rendered)
    labels = hub["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
    assert pdb["spec"]["minAvailable"] < hub["spec"]["replicas"]
    # the replicas share a PostgreSQL database and a cookie secret, from the Secret, over the base's config
    secret = _by_kind("Secret", "hubkit-secrets", rendered)
    env = {k: v for k, v in secret["stringData"].items()}
    assert {"HUBKIT_HUB__DB_URL", "HUBKIT_COOKIE_SECRET", "CONFIGPROXY_AUTH_TOKEN"} <= set(env)
    cm = _by_kind("ConfigMap", "hubkit-config", rendered)
    path = HA / ".hubkit-ha.toml"
    path.write_text(cm["data"]["hubkit.toml"])
    try:
        settings = load_settings(path, env=env)
    finally:
        path.unlink()
    assert settings.hub.db_url.startswith("postgresql")
    job = _by_kind("Job", "hubkit-db-upgrade", rendered)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["db", "upgrade"] and container["image"] == hub["spec"]["template"]["spec"][
        "containers"][0]["image"]
    # Kubernetes 1.20 serves PodDisruptionBudget as policy/v1beta1 only (same fields; policy/v1 came in 1.21,
    # which current clusters require): the live dry run gets that version
    for doc in rendered:
        if doc["kind"] == "PodDisruptionBudget":
            doc["apiVersion"] = "policy/v1beta1"
    file = HA / ".rendered-1.20.yaml"
    file.write_text(yaml.safe_dump_all(rendered))
    try:
        dry = kubectl(cluster, "apply", "--server-side", "--dry-run=server", "-f", str(file))
    finally:
        file.unlink()
    assert dry.stdout.count("(server dry run)") == len(rendered), dry.stdout
