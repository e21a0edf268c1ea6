"""hubkit authenticators for OAuth 2 / OpenID Connect providers."""

from __future__ import annotations

from .base import Endpoints, OAuthAuthenticator
from .config import OAuthConfig, OIDCConfig
from .identity import Identity
from .oidc import OIDCAuthenticator
from .policy import AccessDenied, AccessPolicy

__all__ = [
    "AccessDenied",
    "AccessPolicy",
    "Endpoints",
    "Identity",
    "OAuthAuthenticator",
    "OAuthConfig",
    "OIDCAuthenticator",
    "OIDCConfig",
]
