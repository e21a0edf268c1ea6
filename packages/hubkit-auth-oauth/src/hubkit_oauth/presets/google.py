"""Google: OpenID Connect with an optional hosted-domain (Google Workspace) restriction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, field_validator

from ..config import OIDCConfig
from ..identity import Identity
from ..login_state import LoginState
from ..oidc import OIDCAuthenticator
from ..policy import AccessDenied
from ..refusal import LoginRefused, printable

GOOGLE_ISSUER = "https://accounts.google.com"
_LEGACY_ISSUER = "accounts.google.com"  # Google documents that older tokens carry it without the scheme


class GoogleConfig(OIDCConfig):
    issuer: str = Field(GOOGLE_ISSUER, description="Google's issuer (override only for a test provider).")
    hosted_domain: list[str] = Field(
        default_factory=list,
        description="Only accounts of these Google Workspace domains may log in (checked on the 'hd' claim).",
    )
    extra_authorize_params: dict[str, str] = Field(
        default_factory=lambda: {"access_type": "offline"},
        description="access_type=offline asks Google for a refresh token.",
    )

    @field_validator("hosted_domain")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [d.strip().lower() for d in value if d.strip()]


class GoogleAuthenticator(OIDCAuthenticator):
    display_name: ClassVar[str] = "Google"
    provider: ClassVar[str] = "google"
    default_username_claim: ClassVar[str] = "email"
    config: GoogleConfig

    def authorize_params(self, login: LoginState) -> dict[str, str]:
        params = super().authorize_params(login)
        domains = self.config.hosted_domain
        # one domain: Google shows only that domain's accounts; several: any Workspace account ("*")
        if domains:
            params["hd"] = domains[0] if len(domains) == 1 else "*"
        return params

    def expected_issuer(self, claims: dict[str, Any]) -> str:
        issuer = super().expected_issuer(claims)
        if issuer == GOOGLE_ISSUER and claims.get("iss") == _LEGACY_ISSUER:
            return _LEGACY_ISSUER
        return issuer

    async def identify(self, tokens: dict[str, Any], *, nonce: str | None,
                       previous: Mapping[str, Any] | None = None) -> Identity:
        identity = await super().identify(tokens, nonce=nonce, previous=previous)
        domains = self.config.hosted_domain
        if domains:
            hd = str(identity.claims.get("hd") or "").lower()
            if hd not in domains:
                shown = " or ".join(domains)
                raise AccessDenied(
                    f"Sign in with a Google account of {shown}; the account you used "
                    f"({identity.email or identity.username}) is not one. Start the login again.",
                    reason=f"policy: {printable(identity.username)!r} is not in the hosted domain {shown}",
                )
            if not identity.email_verified:
                raise LoginRefused("Google has not verified this account's e-mail address.",
                                   reason=f"policy: {printable(identity.username)!r} has no verified e-mail")
        return identity
