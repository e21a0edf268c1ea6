"""Generic OpenID Connect from the issuer URL alone: discovery, JWKS, verified ID token, optional userinfo."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from hubkit.errors import AuthFailed
from hubkit.plugins.registry import HubInfo

from .base import Endpoints, OAuthAuthenticator
from .config import OIDCConfig
from .id_token import verify_id_token
from .identity import Identity, claim, group_names, username_from, verified
from .jwks import JWKSCache
from .login_state import LoginState
from .refusal import LoginRefused, printable
from .transport import ProviderUnreachable, host_of

log = logging.getLogger("hubkit.oauth")

TENANT_PLACEHOLDER = "{tenantid}"


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None
    iss_parameter_supported: bool = False  # RFC 9207: every authorization response names the issuer


class OIDCAuthenticator(OAuthAuthenticator):
    display_name: ClassVar[str] = "OpenID Connect"
    provider: ClassVar[str] = "oidc"
    config: OIDCConfig

    def __init__(self, config: OIDCConfig, hub: HubInfo) -> None:
        super().__init__(config, hub)
        self._metadata: ProviderMetadata | None = None
        self._metadata_at = 0.0
        self._jwks: JWKSCache | None = None

    def default_scopes(self) -> list[str]:
        return ["openid", "profile", "email"]

    async def startup(self) -> None:
        await super().startup()
        try:  # warm the cache; a provider down at hub start must not stop the hub
            await self.metadata()
        except AuthFailed as exc:
            log.warning("OIDC discovery for %s failed at startup (will retry on login): %s",
                        host_of(self.config.issuer), exc)

    # ----- discovery ------------------------------------------------------------------------------------
    async def metadata(self) -> ProviderMetadata:
        if self._metadata is not None and time.monotonic() - self._metadata_at < self.config.discovery_ttl:
            return self._metadata
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = await self.http.get_json(url)
        if not isinstance(doc, dict):
            raise ProviderUnreachable(f"The login provider ({host_of(url)}) sent an unreadable discovery document.")
        issuer = doc.get("issuer")
        if not self.issuer_matches(str(issuer)):
            raise AuthFailed(
                f"The login provider's discovery document names the issuer {str(issuer)[:100]!r}, not the "
                f"configured {self.config.issuer!r}. Tell the hub's administrator (issuer setting)."
            )
        try:
            meta = ProviderMetadata(
                issuer=str(issuer),
                authorization_endpoint=str(doc["authorization_endpoint"]),
                token_endpoint=str(doc["token_endpoint"]),
                jwks_uri=str(doc["jwks_uri"]),
                userinfo_endpoint=doc.get("userinfo_endpoint"),
                end_session_endpoint=doc.get("end_session_endpoint"),
                iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported") is True,
            )
        except KeyError as exc:
            raise ProviderUnreachable(
                f"The login provider's discovery document ({host_of(url)}) lacks {exc.args[0]}."
            ) from None
        if self._jwks is None or self._jwks.url != meta.jwks_uri:
            self._jwks = JWKSCache(self.http, meta.jwks_uri, refetch_interval=self.config.jwks_refetch_interval)
        self._metadata, self._metadata_at = meta, time.monotonic()
        return meta

    def issuer_matches(self, discovered: str) -> bool:
        """Exact match, or a multi-tenant template (``.../{tenantid}/v2.0``) for a multi-tenant issuer."""
        configured = self.config.issuer.rstrip("/")
        return discovered.rstrip("/") == configured or TENANT_PLACEHOLDER in discovered

    def expected_issuer(self, claims: dict[str, Any]) -> str:
        assert self._metadata is not None
        issuer = self._metadata.issuer
        if TENANT_PLACEHOLDER in issuer:
            return issuer.replace(TENANT_PLACEHOLDER, str(claims.get("tid", "")))
        return issuer

    async def endpoints(self) -> Endpoints:
        meta = await self.metadata()
        return Endpoints(meta.authorization_endpoint, meta.token_endpoint, meta.end_session_endpoint)

    def cached_end_session_endpoint(self) -> str | None:
        return self._metadata.end_session_endpoint if self._metadata else None

    async def check_callback(self, params: Mapping[str, str]) -> None:
        """RFC 9207 against mix-up attacks: a callback naming another issuer is refused, and so is one naming
        none when the provider promises to always name itself (an attacker's provider would not)."""
        meta = await self.metadata()
        iss = params.get("iss")
        if iss is None:
            if meta.iss_parameter_supported:
                raise LoginRefused(
                    "The login answer does not say which provider sent it, though this provider always does. "
                    "Start the login again.",
                    reason="the callback has no iss parameter, though the provider advertises RFC 9207",
                )
            return
        if TENANT_PLACEHOLDER not in meta.issuer and iss != meta.issuer:
            raise LoginRefused(
                "The login answer came from a different provider than the one this login started with. "
                "Start the login again.",
                reason=f"the callback's iss {printable(iss)!r} is not the issuer {meta.issuer!r}",
            )

    def authorize_params(self, login: LoginState) -> dict[str, str]:
        return {"nonce": login.nonce}

    # ----- identity -------------------------------------------------------------------------------------
    async def identify(self, tokens: dict[str, Any], *, nonce: str | None,
                       previous: Mapping[str, Any] | None = None) -> Identity:
        meta = await self.metadata()
        claims: dict[str, Any] = {}
        id_token = tokens.get("id_token")
        if previous is not None and id_token == previous.get("id_token"):
            claims = dict(previous.get("user") or {})  # refresh without a new ID token
        elif isinstance(id_token, str):
            assert self._jwks is not None
            claims = await verify_id_token(
                id_token, jwks=self._jwks, issuer=self.expected_issuer, client_id=self.config.client_id,
                nonce=nonce, algorithms=self.config.id_token_algorithms, leeway=self.config.clock_skew,
            )
            if previous is not None and claims.get("sub") != (previous.get("user") or {}).get("sub"):
                raise LoginRefused("The login provider returned a different account on refresh.",
                                   reason="the refreshed ID token names another subject")
        elif nonce is not None:
            raise LoginRefused("The login provider sent no ID token; is the 'openid' scope requested?",
                               reason="no ID token in the token answer (is the 'openid' scope requested?)")
        if self.config.use_userinfo and meta.userinfo_endpoint:
            info = await self.http.get_json(meta.userinfo_endpoint, token=tokens["access_token"])
            if isinstance(info, dict):
                if claims.get("sub") and info.get("sub") != claims["sub"]:
                    raise LoginRefused("The login provider's user information names a different account.",
                                       reason="userinfo names another subject than the ID token")
                claims = {**claims, **info}
        return self.identity_from_claims(claims)

    def identity_from_claims(self, claims: dict[str, Any]) -> Identity:
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        return Identity(
            username=username_from(claims, self.username_claim, lowercase=self.config.lowercase_username),
            email=email,
            email_verified=verified(claims.get("email_verified")),
            groups=group_names(claim(claims, self.config.groups_claim)),
            claims=_jsonable(claims),
        )


def _jsonable(claims: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in claims.items() if isinstance(v, str | int | float | bool | list | dict | None)}
