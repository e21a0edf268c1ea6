"""The provider's token endpoint: authorization-code exchange (with the PKCE verifier) and refresh.

Request bodies and client authentication are built with authlib; the answer is kept as an auth_state dict
with an absolute ``expires_at`` so expiry can be judged later without knowing when the token arrived.
"""

from __future__ import annotations

import math
import time
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request

from .refusal import LoginRefused
from .transport import ProviderHTTP, ProviderUnreachable, host_of, parse_json

TOKEN_FIELDS = ("access_token", "token_type", "refresh_token", "id_token", "scope")


class TokenRejected(LoginRefused):
    """The token endpoint answered with an OAuth error (``invalid_grant``: code used already or expired)."""

    def __init__(self, error: str, message: str) -> None:
        self.error = error
        super().__init__(message, reason=f"the provider's token endpoint refused: {error}")


class TokenEndpoint:
    def __init__(self, http: ProviderHTTP, *, client_id: str, client_secret: str, auth_method: str) -> None:
        self.http = http
        self.auth = ClientAuth(client_id, client_secret, auth_method)
        self.client_id = client_id
        self.auth_method = auth_method

    async def exchange_code(self, url: str, *, code: str, redirect_uri: str, verifier: str) -> dict[str, Any]:
        return await self._post(url, "authorization_code", code=code, redirect_uri=redirect_uri,
                                code_verifier=verifier)

    async def refresh(self, url: str, *, refresh_token: str) -> dict[str, Any]:
        return await self._post(url, "refresh_token", refresh_token=refresh_token)

    async def _post(self, url: str, grant_type: str, **params: str) -> dict[str, Any]:
        body = prepare_token_request(grant_type, **params)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        url, headers, body = self.auth.prepare("POST", url, headers, body)
        response = await self.http.request("POST", url, headers=headers, content=body)
        if "json" in response.headers.get("content-type", ""):
            data = parse_json(response, url)
        else:  # some providers (GitHub without Accept) answer form-encoded
            data = dict(parse_qsl(response.text))
        if not isinstance(data, dict):
            raise ProviderUnreachable(f"The login provider ({host_of(url)}) sent an unreadable token answer.")
        if data.get("error") or response.status_code >= 400:
            raise _rejected(str(data.get("error") or f"http_{response.status_code}"), grant_type)
        if not isinstance(data.get("access_token"), str):
            raise ProviderUnreachable(f"The login provider ({host_of(url)}) sent no access token.")
        return token_state(data)


def token_state(data: dict[str, Any], *, now: float | None = None) -> dict[str, Any]:
    """The parts of a token answer worth keeping, with ``expires_in`` turned into ``expires_at``.

    ``lifetime`` keeps the provider's ``expires_in`` (seconds the token was issued for), which caps the refresh
    margin for providers whose access tokens live only seconds."""
    state: dict[str, Any] = {k: data[k] for k in TOKEN_FIELDS if isinstance(data.get(k), str) and data[k]}
    try:
        lifetime = float(data["expires_in"]) if data.get("expires_in") is not None else None
    except (TypeError, ValueError):
        lifetime = None
    if lifetime is not None and math.isfinite(lifetime):
        state["expires_at"] = (time.time() if now is None else now) + lifetime
        state["lifetime"] = lifetime
    return state


def _rejected(error: str, grant_type: str) -> TokenRejected:
    safe = "".join(c for c in error if c.isalnum() or c in "_-.")[:60] or "error"
    if grant_type == "refresh_token":
        return TokenRejected(safe, f"The login provider would not renew your session ({safe}). Log in again.")
    if safe in ("invalid_grant", "bad_verification_code"):
        return TokenRejected(
            safe,
            "The login provider rejected the login code: it was already used or has expired. "
            "Start the login again.",
        )
    if safe in ("invalid_client", "unauthorized_client", "incorrect_client_credentials"):
        return TokenRejected(
            safe,
            "The login provider does not accept this hub's client credentials. "
            "Tell the hub's administrator (client_id / client_secret).",
        )
    return TokenRejected(safe, f"The login provider refused to complete the login ({safe}). Start again.")
