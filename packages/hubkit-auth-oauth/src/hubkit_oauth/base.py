"""The redirect-login flow every provider shares: start, callback checks, code exchange, policy, refresh.

A provider backend only says where its endpoints are (:meth:`endpoints`) and who the person is
(:meth:`identify`); state/PKCE/error handling, the access policy and token refresh live here once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from hubkit.errors import AuthFailed, ConfigError
from hubkit.interfaces import (
    AuthResult,
    Credentials,
    JSONDict,
    LoginCompletion,
    LoginKind,
    LoginRedirect,
    UserInfo,
)
from hubkit.plugins.registry import HubInfo

from .config import OAuthConfig
from .identity import Identity
from .login_state import LoginState
from .policy import AccessPolicy
from .refusal import LoginRefused, reason_of
from .tokens import TokenEndpoint, TokenRejected
from .transport import ProviderHTTP, ProviderUnreachable

log = logging.getLogger("hubkit.oauth")

# OAuth error codes (RFC 6749 4.1.2.1 and OIDC) mapped to what the person should do.
_CALLBACK_ERRORS = {
    "access_denied": "You declined the login at the provider (or it refused you). Start again to retry.",
    "login_required": "The login provider needs you to sign in. Start the login again.",
    "consent_required": "The login provider needs your consent for this hub. Start the login again.",
    "interaction_required": "The login provider needs you to confirm the login. Start again.",
    "temporarily_unavailable": "The login provider is temporarily unavailable. Try again in a moment.",
    "server_error": "The login provider had an internal error. Try again later.",
}


@dataclass(frozen=True)
class Endpoints:
    authorize: str
    token: str
    end_session: str | None = None


class OAuthAuthenticator:
    """Base of every OAuth 2 / OIDC backend. Subclasses set ``provider``/``display_name`` and implement
    :meth:`endpoints`, :meth:`default_scopes` and :meth:`identify`."""

    login_kind: ClassVar[LoginKind] = LoginKind.REDIRECT
    display_name: ClassVar[str] = "OAuth"
    provider: ClassVar[str] = "oauth"
    default_username_claim: ClassVar[str] = "preferred_username"
    config: OAuthConfig

    def __init__(self, config: OAuthConfig, hub: HubInfo) -> None:
        self.config = config
        self.hub = hub
        self.http = ProviderHTTP(timeout=config.http_timeout, ca_bundle=config.ca_bundle)
        self.tokens = TokenEndpoint(
            self.http,
            client_id=config.client_id,
            client_secret=config.client_secret.get_secret_value(),
            auth_method=config.token_endpoint_auth_method,
        )
        self.policy = self.make_policy()
        self._refresh_locks: dict[str, asyncio.Lock] = {}
        self._recent: dict[str, tuple[float, AuthResult]] = {}
        if config.display_name:
            self.display_name = config.display_name  # type: ignore[misc]

    # ----- hooks for subclasses -------------------------------------------------------------------------
    def make_policy(self) -> AccessPolicy:
        return AccessPolicy(self.config)

    def default_scopes(self) -> list[str]:
        return []

    async def endpoints(self) -> Endpoints:
        raise NotImplementedError

    def authorize_params(self, login: LoginState) -> dict[str, str]:
        """Extra authorization-request parameters (OIDC adds the nonce, Google its hosted domain)."""
        return {}

    async def identify(self, tokens: dict[str, Any], *, nonce: str | None,
                       previous: Mapping[str, Any] | None = None) -> Identity:
        """Who the tokens belong to. ``nonce`` is the login attempt's (``None`` on refresh); ``previous`` is
        the stored auth_state on refresh."""
        raise NotImplementedError

    def cached_end_session_endpoint(self) -> str | None:
        return None

    # ----- Authenticator protocol -----------------------------------------------------------------------
    @property
    def username_claim(self) -> str:
        return self.config.username_claim or self.default_username_claim

    async def startup(self) -> None:
        if not (self.config.allow_all or self.policy.has_allow_rule()):
            raise ConfigError(
                "no one could log in: set allowed_users, allowed_email_domains, allowed_groups (or a "
                "provider's organisation rules), admin_users/admin_groups, or allow_all = true to let every "
                "account of the provider in",
                key=f"auth.{self.provider}",
            )

    async def shutdown(self) -> None:
        """Called by the hub on stop: close the HTTP connection pool to the provider."""
        await self.http.aclose()

    aclose = shutdown

    async def authenticate(self, credentials: Credentials) -> AuthResult | None:
        raise AuthFailed(f"This hub signs in through {self.display_name}; use the login button.")

    def login_url(self, next_url: str) -> str:
        base = self.hub.base_url.rstrip("/")
        url = f"{base}/hub/oauth_login"
        return f"{url}?next={quote(next_url, safe='')}" if next_url else url

    async def start_login(self, next_url: str, redirect_uri: str) -> LoginRedirect:
        endpoints = await self.endpoints()
        login = LoginState.new(next_url)
        scopes = self.config.scopes if self.config.scopes is not None else self.default_scopes()
        params = {
            "code_challenge": create_s256_code_challenge(login.verifier),
            "code_challenge_method": "S256",
            **self.authorize_params(login),
            **self.config.extra_authorize_params,
        }
        url = prepare_grant_uri(
            endpoints.authorize, self.config.client_id, "code", redirect_uri=redirect_uri,
            scope=" ".join(scopes) or None, state=login.state, **params,
        )
        return LoginRedirect(url=url, state=login.encode())

    async def complete_login(self, params: Mapping[str, str], state: str, redirect_uri: str) -> LoginCompletion:
        try:
            return await self._complete_login(params, state, redirect_uri)
        except AuthFailed as exc:
            # one line per refusal, as for form logins; reasons never carry the code, state or a token
            log.info("%s login refused: %s", self.provider, reason_of(exc))
            raise
        except Exception as exc:  # a provider answering in an unexpected shape must not become a 500
            log.error("%s login failed unexpectedly: %s", self.provider, type(exc).__name__, exc_info=True)
            raise AuthFailed(
                "The login could not be completed because the provider answered in an unexpected way. "
                "Start again; if it keeps happening, tell the hub's administrator."
            ) from None

    async def check_callback(self, params: Mapping[str, str]) -> None:
        """Provider-specific checks of the callback parameters (OIDC: the ``iss`` parameter, RFC 9207)."""

    async def _complete_login(self, params: Mapping[str, str], state: str, redirect_uri: str) -> LoginCompletion:
        login = LoginState.decode(state)
        login.check_age(self.config.login_timeout)
        if params.get("error"):  # shown even without a matching state: an error page grants nothing
            error = _error_code(params.get("error", ""))
            raise LoginRefused(_callback_error(error, params.get("error_description", "")),
                               reason=f"the provider answered with the error {error!r}")
        got_state = params.get("state") or ""
        if not hmac.compare_digest(got_state.encode(), login.state.encode()):
            raise LoginRefused(
                "The login answer does not match the login this browser started (state mismatch). "
                "Start the login again, in one browser tab.",
                reason="state mismatch (the callback's state is not this browser's login attempt)",
            )
        await self.check_callback(params)
        code = params.get("code")
        if not code:
            raise LoginRefused("The login provider sent no authorization code. Start the login again.",
                               reason="the callback carries no authorization code")
        endpoints = await self.endpoints()
        tokens = await self.tokens.exchange_code(
            endpoints.token, code=code, redirect_uri=redirect_uri, verifier=login.verifier
        )
        identity = await self.identify(tokens, nonce=login.nonce)
        result = self.result_for(identity, tokens)
        log.info("%s login accepted for %s", self.provider, identity.username)
        return LoginCompletion(result=result, next_url=login.next_url)

    def result_for(self, identity: Identity, tokens: Mapping[str, Any]) -> AuthResult:
        decision = self.policy.decide(identity)
        auth_state: JSONDict = {**tokens, "provider": self.provider, "username": identity.username,
                                "user": identity.claims,
                                "provider_groups": list(identity.groups)}
        return AuthResult(
            name=identity.username,
            admin=decision.admin,
            groups=decision.groups,
            auth_state=auth_state,
            user_info={"provider": self.provider, "email": identity.email},
        )

    async def refresh_user(self, user: UserInfo, auth_state: JSONDict | None) -> AuthResult | bool:
        """``True`` while the access token is good for longer than ``refresh_margin``; a new result after a
        refresh (groups re-synced, rules re-applied); ``False`` when the person must log in again."""
        if not auth_state or not auth_state.get("access_token"):
            return True
        now = time.time()
        expires_at = auth_state.get("expires_at")
        if not isinstance(expires_at, int | float):
            return True  # a token without expiry (a classic GitHub OAuth app token)
        if now < expires_at - self.config.refresh_margin:
            return True
        refresh_token = auth_state.get("refresh_token")
        if not isinstance(refresh_token, str) or not refresh_token:
            return now < expires_at
        # A spawn and the auth-state API may refresh the same user at once; with rotating refresh tokens the
        # second use of the old token would fail, so one refresh per token is shared for a minute.
        key = hashlib.sha256(refresh_token.encode()).hexdigest()
        async with self._refresh_locks.setdefault(user.name, asyncio.Lock()):
            cutoff = time.monotonic() - 60
            self._recent = {k: v for k, v in self._recent.items() if v[0] > cutoff}
            if key in self._recent:
                return self._recent[key][1]
            try:
                outcome = await self._refresh(user, auth_state, refresh_token, expires_at)
            except Exception as exc:
                log.error("%s refresh for %s failed unexpectedly: %s", self.provider, user.name,
                          type(exc).__name__, exc_info=True)
                return time.time() < expires_at
            if isinstance(outcome, AuthResult):
                self._recent[key] = (time.monotonic(), outcome)
            return outcome

    async def _refresh(self, user: UserInfo, auth_state: JSONDict, refresh_token: str,
                       expires_at: float) -> AuthResult | bool:
        now = time.time()
        try:
            endpoints = await self.endpoints()
            tokens = await self.tokens.refresh(endpoints.token, refresh_token=refresh_token)
        except TokenRejected as exc:
            log.info("%s refresh for %s refused (%s)", self.provider, user.name, exc.error)
            return False
        except ProviderUnreachable:
            return now < expires_at  # keep using the token while it lasts; the next call retries
        tokens.setdefault("refresh_token", refresh_token)
        if "id_token" not in tokens and isinstance(auth_state.get("id_token"), str):
            tokens["id_token"] = auth_state["id_token"]
        try:
            identity = await self.identify(tokens, nonce=None, previous=auth_state)
            if identity.username != auth_state.get("username", identity.username):
                log.warning("%s refresh for %s returned another identity", self.provider, user.name)
                return False
            return self.result_for(identity, tokens)
        except ProviderUnreachable:
            return now < expires_at
        except AuthFailed as exc:
            log.info("%s refresh for %s: no longer allowed: %s", self.provider, user.name, reason_of(exc))
            return False

    def logout_url(self, user: UserInfo, auth_state: JSONDict | None) -> str | None:
        """RP-initiated logout by ``client_id`` (no ``id_token_hint``: a token never goes into a URL)."""
        if not self.config.logout_from_provider:
            return None
        end_session = self.cached_end_session_endpoint()
        if not end_session:
            return None
        query = urlencode({"client_id": self.config.client_id,
                           "post_logout_redirect_uri": self.post_logout_redirect_url()})
        return f"{end_session}{'&' if '?' in end_session else '?'}{query}"

    def post_logout_redirect_url(self) -> str:
        if self.config.post_logout_redirect_url:
            return self.config.post_logout_redirect_url
        return f"{self.hub.public_url.rstrip('/')}{self.hub.base_url.rstrip('/')}/hub/login"


def _error_code(error: str) -> str:
    return "".join(c for c in error if c.isalnum() or c in "_-.")[:60]


def _callback_error(code: str, description: str) -> str:
    known = _CALLBACK_ERRORS.get(code)
    detail = "".join(c for c in description if c.isprintable())[:200]
    if known:
        return f"{known}" + (f" (provider said: {detail})" if detail else "")
    return f"The login provider returned an error: {code or 'unknown'}" + (f" ({detail})" if detail else "") + \
        ". Start the login again; if it keeps happening, tell the hub's administrator."
