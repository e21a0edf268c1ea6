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
from typing import Any, ClassVar, TypeGuard
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

    def refresh_margin_for(self, auth_state: Mapping[str, Any]) -> float:
        """``refresh_margin``, at most half the access token's lifetime: with 20 s tokens and the 60 s default
        every token would be "due" the moment it arrives, and no refresh could ever be shared."""
        margin = self.config.refresh_margin
        lifetime = auth_state.get("lifetime")
        if _is_number(lifetime) and lifetime > 0:
            margin = min(margin, lifetime / 2)
        return margin

    def is_fresh(self, auth_state: Mapping[str, Any], now: float | None = None) -> bool:
        """The access token lives longer than the refresh margin (a token without expiry always does)."""
        expires_at = auth_state.get("expires_at")
        if not _is_number(expires_at):
            return True
        return (time.time() if now is None else now) < expires_at - self.refresh_margin_for(auth_state)

    async def refresh_user(self, user: UserInfo, auth_state: JSONDict | None) -> AuthResult | bool:
        """``True`` while the access token is good for longer than the refresh margin; a new result after a
        refresh (groups re-synced, rules re-applied); ``False`` when the person must log in again.

        What is handed out (the stored state on ``True``, or the new result) never expires within the
        margin, except while the provider cannot be reached: then a token is used for as long as it lasts."""
        if not auth_state or not auth_state.get("access_token") or self.is_fresh(auth_state):
            return True
        async with self._refresh_locks.setdefault(user.name, asyncio.Lock()):
            try:
                return await self._refresh_due(user, auth_state)
            except Exception as exc:
                log.error("%s refresh for %s failed unexpectedly: %s", self.provider, user.name,
                          type(exc).__name__, exc_info=True)
                return time.time() < float(auth_state["expires_at"])

    async def _refresh_due(self, user: UserInfo, auth_state: JSONDict) -> AuthResult | bool:
        """Refresh a due token, under the user's lock.

        A spawn and the auth-state API may refresh the same user at once, and with rotating refresh tokens
        the second use of the old token would fail. So a refresh finished moments ago from the same refresh
        token is shared, but only while its own access token is fresh; once that is due too, the refresh
        continues from its (newer) tokens rather than handing out a token about to expire."""
        now = time.monotonic()
        self._recent = {k: v for k, v in self._recent.items() if v[0] > now - _SHARE_SECONDS}
        key = _token_key(auth_state.get("refresh_token"))
        state: JSONDict = auth_state
        entry = self._recent.get(key)
        shared = entry[1] if entry is not None else None
        if shared is not None:
            if self.is_fresh(shared.auth_state or {}):
                return shared
            state = shared.auth_state or auth_state
        refresh_token = state.get("refresh_token")
        expires_at = float(state["expires_at"])
        if not isinstance(refresh_token, str) or not refresh_token:
            outcome: AuthResult | bool = time.time() < expires_at
        else:
            outcome = await self._refresh(user, state, refresh_token, expires_at)
        if outcome is True and shared is not None:
            return shared  # the provider is unreachable: the newer tokens last longest
        if isinstance(outcome, AuthResult):
            for used in {key, _token_key(refresh_token)}:
                self._recent[used] = (time.monotonic(), outcome)
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


_SHARE_SECONDS = 300  # how long a refresh result is remembered for callers still holding the older tokens


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _token_key(refresh_token: Any) -> str:
    return hashlib.sha256(str(refresh_token or "").encode()).hexdigest()


def _error_code(error: str) -> str:
    return "".join(c for c in error if c.isalnum() or c in "_-.")[:60]


def _callback_error(code: str, description: str) -> str:
    known = _CALLBACK_ERRORS.get(code)
    detail = "".join(c for c in description if c.isprintable())[:200]
    if known:
        return f"{known}" + (f" (provider said: {detail})" if detail else "")
    return f"The login provider returned an error: {code or 'unknown'}" + (f" ({detail})" if detail else "") + \
        ". Start the login again; if it keeps happening, tell the hub's administrator."
