"""Least privilege, proved on the real API server: every test in this folder runs the hub under the Role of
examples/k8s/base/hub-rbac.yaml (a ServiceAccount token, nothing else); the Role grants exactly what the
spawner declares it needs; and without any one of its verbs the hub says which, at startup and in the call
that needs it."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
from hubkit.errors import ConfigError, SpawnFailed
from hubkit_spawn_k8s import access
from hubkit_spawn_k8s.spawner import KubeSpawner
from hubkit_spawn_k8s.testing import ControlPlane
from hubkit_spawn_k8s.testing.helpers import Ctx, Namespace, example_rbac, hub_info, make_config, make_spec

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240)]


def _role_rules() -> list[dict[str, Any]]:
    return list(next(d for d in example_rbac() if d["kind"] == "Role")["rules"])


def _granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def _without(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> list[dict[str, Any]]:
    out = []
    for rule in copy.deepcopy(rules):
        if group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]:
            rule["verbs"].remove(verb)
            if not rule["verbs"]:
                continue
        out.append(rule)
    return out


def _example_spawner_config() -> Any:
    """The spawner options of examples/k8s (what the Role is written for)."""
    import tomllib

    cm = next(d for d in _all_docs() if d["kind"] == "ConfigMap")
    from hubkit_spawn_k8s.config import KubeSpawnerConfig

    return KubeSpawnerConfig.model_validate(tomllib.loads(cm["data"]["hubkit.toml"])["spawner"]["kubernetes"])


def _all_docs() -> list[dict[str, Any]]:
    import yaml
    from hubkit_spawn_k8s.testing.binaries import repo_root

    root = repo_root()
    assert root is not None
    return [d for p in sorted((root / "examples/k8s/base").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())
            if d]


ROLE = _role_rules()
SPAWNER_VERBS = sorted((g, r, v) for g, r, v in _granted(ROLE) if g == "")


def test_role_grants_exactly_what_the_spawner_and_discovery_need() -> None:
    needs = {(n.group, n.resource + (f"/{n.subresource}" if n.subresource else ""), n.verb)
             for n in access.needed(_example_spawner_config())}
    discovery = {("discovery.k8s.io", "endpointslices", "list"), ("discovery.k8s.io", "endpointslices", "watch")}
    assert _granted(ROLE) == needs | discovery
    assert not any(v in ("*", "get", "update", "deletecollection") for _, r, v in _granted(ROLE) if r != "pods/log")


async def test_the_spawner_works_under_the_role_and_asks_for_nothing_more(ns: Namespace, image: str) -> None:
    sp = KubeSpawner(make_config(ns, image), hub_info())
    await sp.startup()
    try:
        assert await sp.missing_permissions() == []
        spec = make_spec("alice")
        result = await sp.start(spec, Ctx())
        assert await sp.log_tail(spec, result.state)
        await sp.stop(spec, result.state, now=True)
    finally:
        await sp.shutdown()


@pytest.mark.parametrize(("group", "resource", "verb"), SPAWNER_VERBS, ids=[f"{v}-{r}" for _, r, v in SPAWNER_VERBS])
async def test_startup_names_a_missing_verb(cluster: ControlPlane, image: str, tmp_path: Path, group: str,
                                           resource: str, verb: str) -> None:
    ns = Namespace.create(cluster, tmp_path, role_rules=_without(ROLE, group, resource, verb))
    try:
        sp = KubeSpawner(make_config(ns, image), hub_info())
        with pytest.raises(ConfigError) as info:
            await sp.startup()
        message = str(info.value)
        assert f"lacks, in namespace {ns.name!r}: {verb} {resource} (for " in message, message
        assert message.count(" (for ") == 1, message  # that one, and nothing else
    finally:
        ns.delete()


async def test_a_call_without_its_verb_fails_naming_it(cluster: ControlPlane, image: str, tmp_path: Path) -> None:
    """Past the startup check (a Role edited while the hub runs), the API's refusal is passed on verbatim."""
    ns = Namespace.create(cluster, tmp_path)
    try:
        sp = KubeSpawner(make_config(ns, image), hub_info())
        await sp.startup()
        try:
            cluster.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                           "metadata": {"name": "hubkit-hub", "namespace": ns.name},
                           "rules": _without(ROLE, "", "secrets", "patch")})
            for _ in range(100):  # the authorizer follows Role changes through a watch: wait until it has
                if [n.rule for n in await sp.missing_permissions()] == ["patch secrets"]:
                    break
                await asyncio.sleep(0.1)
            with pytest.raises(SpawnFailed) as info:
                await sp.start(make_spec("alice"), Ctx())
            assert info.value.reason_code == "k8s-forbidden"
            assert "The hub may not patch Secret hubkit-alice-token" in str(info.value)
            assert 'cannot patch resource "secrets"' in str(info.value)
            assert ns.names("pods") == []  # and it cleaned up after itself with what it may do
        finally:
            await sp.shutdown()
    finally:
        ns.delete()
