"""The example configs load through the hub's own config loader and validate against the registered backend
models; the docs' "add a provider" recipe works as a plugin of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from hubkit.config.loader import load_settings
from hubkit.plugins import hookimpl
from hubkit.plugins.registry import BackendRegistry, HubInfo
from hubkit.runtime.backends import build_backend
from hubkit_oauth import OIDCAuthenticator, OIDCConfig
from hubkit_oauth import plugin as oauth_plugin
from hubkit_oauth.presets.github import GitHubAuthenticator
from pydantic import Field, model_validator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HUB = HubInfo(hub_id="t", data_dir="/tmp", hub_api_url="", hub_url="", public_url="https://hub.example.org")


def registry() -> BackendRegistry[Any]:
    reg: BackendRegistry[Any] = BackendRegistry("auth")
    oauth_plugin.hubkit_register_authenticators(reg)
    return reg


EXAMPLE_CONFIGS = sorted(EXAMPLES.glob("*/hubkit.toml"))


@pytest.mark.parametrize("path", EXAMPLE_CONFIGS, ids=lambda p: p.parent.name)
def test_every_example_config_loads_and_routes_through_a_proxy(path: Path) -> None:
    """Each example's hubkit.toml loads, every backend section validates against the installed plugins, and
    a proxy is named: without one, logins work and /user/<name>/ answers 503 (tests/oauth/test_examples_e2e,
    tests/e2e, tests/vm and tests/docker then reach JupyterLab through it)."""
    from hubkit.plugins.hooks import collect_registries
    from hubkit.plugins.manager import build_plugin_manager
    from hubkit.runtime.backends import validate_sections

    settings = load_settings(path, env={})
    validate_sections(settings, collect_registries(build_plugin_manager(load_entry_points=True)))
    assert settings.proxy.backend != "none", f"{path}: no [proxy] backend, so /user/<name>/ cannot be reached"
    assert len(EXAMPLE_CONFIGS) >= 5  # demo, docker, oauth-github, oauth-oidc, vm


@pytest.mark.parametrize(("example", "backend"), [("oauth-github", "github"), ("oauth-oidc", "oidc")])
def test_example_configs_load(example: str, backend: str) -> None:
    env = {f"HUBKIT_AUTH__{backend.upper()}__CLIENT_SECRET": "from-the-environment"}
    settings = load_settings(EXAMPLES / example / "hubkit.toml", env=env)
    assert settings.auth.backend == backend
    auth = build_backend(registry(), backend, settings.auth.backends, HUB)
    assert auth.config.client_secret.get_secret_value() == "from-the-environment"
    assert "from-the-environment" not in repr(auth.config)  # secrets stay out of reprs and logs
    if isinstance(auth, GitHubAuthenticator):
        assert auth.policy.allowed_groups == {"my-org"}


class KeycloakConfig(OIDCConfig):
    server: str = Field(..., description="https://keycloak.example.org")
    realm: str = Field(..., description="Realm name")
    issuer: str = ""

    @model_validator(mode="before")
    @classmethod
    def _issuer(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("issuer"):
            data = {**data, "issuer": f"{data['server'].rstrip('/')}/realms/{data['realm']}"}
        return data


class KeycloakAuthenticator(OIDCAuthenticator):
    display_name: ClassVar[str] = "Keycloak"
    provider: ClassVar[str] = "keycloak"


class KeycloakPlugin:
    @hookimpl
    def hubkit_register_authenticators(self, registry: Any) -> None:
        registry.add("keycloak", KeycloakAuthenticator, config=KeycloakConfig, description="Keycloak realm")


def test_docs_recipe_for_another_provider() -> None:
    reg = registry()
    KeycloakPlugin().hubkit_register_authenticators(reg)
    sections = {"keycloak": {"server": "https://kc.example.org", "realm": "lab", "client_id": "hub",
                             "allowed_groups": ["lab"]}}
    auth = build_backend(reg, "keycloak", sections, HUB)
    assert auth.config.issuer == "https://kc.example.org/realms/lab"
    assert auth.display_name == "Keycloak" and auth.login_url("") == "/hub/oauth_login"
