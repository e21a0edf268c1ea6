"""Who is asking? Tokens and the OAuth cookie are resolved through the hub; scopes decide who gets in."""

from __future__ import annotations

import re
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, User
from tornado.web import HTTPError, RequestHandler
from traitlets import default

from . import runtime
from .scopes import allowed

_AUTH = re.compile(r"^\s*(token|bearer)\s+(\S+)\s*$", re.IGNORECASE)


def _initials(name: str) -> str:
    parts = [p for p in re.split(r"[\s._-]+", name) if p]
    return "".join(p[0] for p in parts[:2]).upper() or name[:1].upper()


def user_from_model(model: dict[str, Any]) -> User:
    name = str(model.get("name", ""))
    raw_info = model.get("user_info")
    info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    display = str(info.get("display_name") or info.get("name") or name)
    return User(
        username=name,
        name=name,
        display_name=display,
        initials=str(info.get("initials") or _initials(display)),
        avatar_url=info.get("avatar_url"),
        color=info.get("color"),
    )


class HubIdentityProvider(IdentityProvider):
    """Token from ``Authorization: token|bearer``, ``?token=`` on websockets (or when allowed), else the cookie."""

    @default("login_handler_class")
    def _login_handler_default(self) -> type[RequestHandler]:
        from .oauth import OAuthLoginHandler

        return OAuthLoginHandler

    @default("logout_handler_class")
    def _logout_handler_default(self) -> type[RequestHandler]:
        from .oauth import OAuthLogoutHandler

        return OAuthLogoutHandler

    @default("token")
    def _token_default(self) -> str:
        """No Jupyter token: every request is checked with the hub. A generated one would be useless here and
        would be printed as a ``?token=`` URL into the server's log."""
        self.token_generated = False
        return ""

    @property
    def auth_enabled(self) -> bool:
        return True

    @property
    def login_available(self) -> bool:
        return True

    def get_handlers(self) -> list[tuple[str, object]]:
        from .oauth import OAuthCallbackHandler

        return [*super().get_handlers(), (r"/oauth_callback", OAuthCallbackHandler)]

    def _explicit_token(self, handler: RequestHandler) -> str | None:
        m = _AUTH.match(handler.request.headers.get("Authorization", ""))
        if m:
            return m.group(2)
        url_token = handler.get_argument("token", "")
        if url_token:
            is_ws = handler.request.headers.get("Sec-Fetch-Mode", "").lower() == "websocket"
            if is_ws or runtime.hub().env.allow_token_in_url:
                return url_token
        return None

    async def get_user(self, handler: RequestHandler) -> User | None:  # type: ignore[override]
        cached = getattr(handler, "_jupyter_current_user", None)
        if cached:
            return cached  # type: ignore[no-any-return]
        hub = runtime.hub()
        token = self._explicit_token(handler)
        from_cookie = token is None
        if token is None:
            raw = handler.get_secure_cookie(hub.env.client_id, max_age_days=14)
            token = raw.decode() if raw else None
        if not token:
            return None
        model = await hub.client.identify(token)
        if model is None:
            if from_cookie:
                handler.clear_cookie(hub.env.client_id, path=hub.env.service_prefix)
            return None
        if not allowed(model.get("scopes") or [], hub.env.access_scopes):
            kind = model.get("kind", "user")
            raise HTTPError(403, f"{kind} {model.get('name', '?')} is not allowed to access this server")
        if not from_cookie:
            handler._token_authenticated = True  # type: ignore[attr-defined]
        return user_from_model(model)

    def is_token_authenticated(self, handler: RequestHandler) -> bool:
        return bool(getattr(handler, "_token_authenticated", False))

    def validate_security(self, app: Any, ssl_options: dict[str, Any] | None = None) -> None:
        # Every request is checked against the hub; jupyter's own token/password warnings do not apply.
        return None
