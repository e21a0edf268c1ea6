"""Browser login through the hub's OAuth2 provider (authorization code + PKCE S256; docs/singleuser.md).

``/login`` starts it (jupyter redirects unauthenticated page requests there), ``/oauth_callback`` finishes it
and stores the access token in a signed, HttpOnly cookie named after the OAuth client id.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import urlencode, urlsplit

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from tornado.web import HTTPError

from . import runtime
from .scopes import allowed

STATE_COOKIE_SUFFIX = "-oauth-state-"


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def safe_next(next_url: str, prefix: str, default: str) -> str:
    """Only same-origin paths under this server's prefix: no open redirects through the login."""
    parts = urlsplit(next_url)
    if parts.scheme or parts.netloc or not parts.path.startswith(prefix) or next_url.startswith("//"):
        return default
    return next_url


class _HubAuthHandler(JupyterHandler):
    """Handlers of the login flow itself: they must work before (and regardless of) any identity."""

    async def prepare(self) -> None:  # type: ignore[override]
        if not self.check_host():
            raise HTTPError(403)
        self.current_user = self._jupyter_current_user = None

    def check_xsrf_cookie(self) -> None:
        return None

    def _cookie_opts(self) -> dict[str, Any]:
        env = runtime.hub().env
        secure = env.cookie_secure or self.request.protocol == "https"
        return {"path": env.service_prefix, "httponly": True, "secure": secure, "samesite": "Lax"}


class OAuthLoginHandler(_HubAuthHandler):
    @allow_unauthenticated
    async def get(self) -> None:
        hub = runtime.hub()
        env = hub.env
        default = env.service_prefix + (env.default_url.lstrip("/") if env.default_url else "")
        next_url = safe_next(self.get_argument("next", default), env.service_prefix, default)
        state, verifier = hub.new_login(next_url)
        self.set_secure_cookie(
            env.client_id + STATE_COOKIE_SUFFIX + state[:8],
            state,
            expires_days=600 / 86400,
            **self._cookie_opts(),
        )
        query = urlencode(
            {
                "client_id": env.client_id,
                "redirect_uri": env.oauth_callback_url,
                "response_type": "code",
                "code_challenge": pkce_challenge(verifier),
                "code_challenge_method": "S256",
                "state": state,
            }
        )
        self.redirect(f"{env.authorize_url}?{query}")


class OAuthCallbackHandler(_HubAuthHandler):
    @allow_unauthenticated
    async def get(self) -> None:
        hub = runtime.hub()
        env = hub.env
        if self.get_argument("error", ""):
            raise HTTPError(400, f"login failed at the hub: {self.get_argument('error')}")
        code = self.get_argument("code", "")
        state = self.get_argument("state", "")
        if not code or not state:
            raise HTTPError(400, "the login callback needs both code and state")
        cookie_name = env.client_id + STATE_COOKIE_SUFFIX + state[:8]
        cookie = self.get_secure_cookie(cookie_name, max_age_days=1)
        if cookie is None or cookie.decode() != state:
            raise HTTPError(403, "login state does not match this browser; start again")
        self.clear_cookie(cookie_name, path=env.service_prefix)
        pending = hub.take_login(state)
        if pending is None:
            raise HTTPError(403, "this login attempt expired or was already used; start again")
        token = await hub.client.exchange_code(code, pending.verifier)
        model = await hub.client.identify(token)
        if model is None:
            raise HTTPError(500, "the hub did not recognise the token it just issued")
        if not allowed(model.get("scopes") or [], env.access_scopes):
            raise HTTPError(403, f"user {model.get('name', '?')} is not allowed to access this server")
        self.set_secure_cookie(env.client_id, token, expires_days=14, **self._cookie_opts())
        self.redirect(pending.next_url)


class OAuthLogoutHandler(_HubAuthHandler):
    @allow_unauthenticated
    async def get(self) -> None:
        env = runtime.hub().env
        raw = self.get_secure_cookie(env.client_id, max_age_days=14)
        if raw:
            runtime.hub().client.forget(raw.decode())
        self.clear_cookie(env.client_id, path=env.service_prefix)
        self.redirect(env.logout_url)
