"""Config models shared by every OAuth/OIDC backend: client, access rules, group mapping, token handling.

One model holds who-gets-in and the claims-to-groups mapping so every preset behaves the same way; presets
only add their provider's endpoints and defaults.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


def check_provider_url(value: str) -> str:
    """Provider URLs must be https, except on a loopback host (local test providers)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s) URL, got {value!r}")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"{value!r} must use https (plain http is only accepted for a loopback host)")
    return value


class OAuthConfig(BaseModel):
    """Options every OAuth backend understands (``[auth.<backend>]``)."""

    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(..., min_length=1, description="OAuth client id registered with the provider.")
    client_secret: SecretStr = Field(
        SecretStr(""), description="OAuth client secret (empty for a public client using PKCE only)."
    )
    token_endpoint_auth_method: str = Field(
        "client_secret_basic", description="client_secret_basic, client_secret_post or none."
    )
    scopes: list[str] | None = Field(None, description="Scopes to request; unset: the backend's default.")
    extra_authorize_params: dict[str, str] = Field(
        default_factory=dict, description="Extra query parameters for the provider's authorization URL."
    )
    display_name: str | None = Field(None, description="Login button text; unset: the provider's name.")

    username_claim: str | None = Field(None, description="Claim that becomes the hubkit username.")
    lowercase_username: bool = Field(True, description="Lower-case usernames (provider names are case-blind).")

    # who gets in
    allow_all: bool = Field(
        False, description="Let every account the provider authenticates in (no allow rule needed)."
    )
    allowed_users: list[str] = Field(default_factory=list, description="Usernames allowed to log in.")
    blocked_users: list[str] = Field(default_factory=list, description="Usernames never allowed in.")
    admin_users: list[str] = Field(default_factory=list, description="Usernames made hub admins.")
    allowed_email_domains: list[str] = Field(
        default_factory=list, description="E-mail domains allowed in (only verified addresses count)."
    )
    allowed_groups: list[str] = Field(
        default_factory=list, description="Provider groups (as the provider names them) allowed in."
    )
    admin_groups: list[str] = Field(
        default_factory=list, description="Provider groups whose members are hub admins."
    )

    # identity claims -> hubkit groups
    groups_claim: str = Field(
        "groups", description="Claim holding the user's groups (dotted path allowed, e.g. realm_access.roles)."
    )
    manage_groups: bool = Field(True, description="Sync the user's hubkit groups from the provider each login.")
    group_map: dict[str, str] = Field(
        default_factory=dict, description="Provider group -> hubkit group name."
    )
    only_mapped_groups: bool = Field(
        False, description="Keep only groups listed in group_map (others are dropped, not passed through)."
    )
    group_prefix: str = Field("", description="Prefix for provider groups passed through unmapped.")

    # tokens, timing, transport
    login_timeout: float = Field(600, gt=0, description="Seconds a started login may take before it expires.")
    refresh_margin: float = Field(
        60, ge=0, description="Refresh the upstream access token this many seconds before it expires "
        "(at most half the token's lifetime); a token inside this margin is never handed out."
    )
    clock_skew: float = Field(30, ge=0, description="Seconds of clock difference tolerated on token times.")
    http_timeout: float = Field(10, gt=0, description="Seconds to wait for the provider per request.")
    ca_bundle: str | None = Field(None, description="CA bundle file for the provider's TLS certificate.")
    logout_from_provider: bool = Field(
        True, description="After hub logout, also end the provider session when it supports that."
    )
    post_logout_redirect_url: str | None = Field(
        None, description="Where the provider sends the browser after logout; unset: the hub's login page."
    )

    @field_validator("allowed_email_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        return [d.strip().lower().lstrip("@") for d in value if d.strip()]

    @field_validator("token_endpoint_auth_method")
    @classmethod
    def _auth_method(cls, value: str) -> str:
        if value not in ("client_secret_basic", "client_secret_post", "none"):
            raise ValueError("expected client_secret_basic, client_secret_post or none")
        return value

    def has_allow_rule(self) -> bool:
        return bool(self.allowed_users or self.allowed_email_domains or self.allowed_groups)


class OIDCConfig(OAuthConfig):
    """Generic OpenID Connect: everything else comes from the issuer's discovery document."""

    issuer: str = Field(..., description="Issuer URL; discovery is read from <issuer>/.well-known/openid-configuration.")
    use_userinfo: bool = Field(False, description="Also read claims from the userinfo endpoint.")
    id_token_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"],
        description="Signature algorithms accepted on ID tokens.",
    )
    jwks_refetch_interval: float = Field(
        10, ge=0, description="Minimum seconds between JWKS refetches caused by an unknown key id."
    )
    discovery_ttl: float = Field(3600, gt=0, description="Seconds the discovery document is cached.")

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return check_provider_url(value)

    @field_validator("id_token_algorithms")
    @classmethod
    def _algs(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if a.lower() == "none" or a.upper().startswith("HS")]
        if bad:
            raise ValueError(f"unsafe ID token algorithms {bad}: only asymmetric signatures are accepted")
        return value
