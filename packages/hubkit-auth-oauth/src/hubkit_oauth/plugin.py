"""Registers the OAuth backends. A new provider is a plugin of its own doing the same (see docs/oauth.md)."""

from __future__ import annotations

from typing import Any

from hubkit.plugins import hookimpl
from hubkit.plugins.registry import BackendRegistry

from .config import OIDCConfig
from .oidc import OIDCAuthenticator
from .presets.auth0 import Auth0Authenticator, Auth0Config
from .presets.azuread import AzureADAuthenticator, AzureADConfig
from .presets.github import GitHubAuthenticator, GitHubConfig
from .presets.gitlab import GitLabAuthenticator, GitLabConfig
from .presets.google import GoogleAuthenticator, GoogleConfig


@hookimpl
def hubkit_register_authenticators(registry: BackendRegistry[Any]) -> None:
    registry.add("oidc", OIDCAuthenticator, config=OIDCConfig,
                 description="any OpenID Connect provider, from its issuer URL")
    registry.add("github", GitHubAuthenticator, config=GitHubConfig,
                 description="GitHub / GitHub Enterprise (organisations and teams)")
    registry.add("gitlab", GitLabAuthenticator, config=GitLabConfig, description="GitLab (groups)")
    registry.add("google", GoogleAuthenticator, config=GoogleConfig,
                 description="Google (hosted-domain restriction)")
    registry.add("azuread", AzureADAuthenticator, config=AzureADConfig, description="Microsoft Entra ID")
    registry.add("auth0", Auth0Authenticator, config=Auth0Config, description="Auth0")
