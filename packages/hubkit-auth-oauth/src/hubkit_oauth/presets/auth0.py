"""Auth0: OpenID Connect on ``https://<domain>/``. Groups usually arrive in a namespaced custom claim set by an
Auth0 Action (``groups_claim = "https://your-hub/groups"``). Logout falls back to Auth0's ``/v2/logout``."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlencode

from pydantic import Field, model_validator

from ..config import OIDCConfig, check_provider_url
from ..oidc import OIDCAuthenticator


class Auth0Config(OIDCConfig):
    domain: str = Field(..., min_length=1, description="Your Auth0 domain, e.g. example.eu.auth0.com.")
    issuer: str = Field("", description="Unset: https://<domain>/.")

    @model_validator(mode="before")
    @classmethod
    def _issuer_from_domain(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("issuer") and data.get("domain"):
            data = {**data, "issuer": check_provider_url(f"https://{data['domain']}/")}
        return data


class Auth0Authenticator(OIDCAuthenticator):
    display_name: ClassVar[str] = "Auth0"
    provider: ClassVar[str] = "auth0"
    default_username_claim: ClassVar[str] = "email"
    config: Auth0Config

    def logout_url(self, user: Any, auth_state: Any) -> str | None:
        url = super().logout_url(user, auth_state)
        if url or not self.config.logout_from_provider:
            return url
        query = urlencode({"client_id": self.config.client_id, "returnTo": self.post_logout_redirect_url()})
        return f"{self.config.issuer.rstrip('/')}/v2/logout?{query}"
