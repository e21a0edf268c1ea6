"""Calls from the server to the hub API: identity lookup (cached), OAuth code exchange, activity posts."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.web import HTTPError

from .hubenv import HubEnv

CACHE_MAX = 1000
# While the hub cannot be reached (a restart), people it vouched for this recently keep access: the server
# outlives the hub. A hub that answers is always believed, after at most env.auth_cache_seconds.
STALE_IF_HUB_DOWN_SECONDS = 300.0


class HubUnavailable(HTTPError):
    """The hub could not be reached, or failed (5xx): it said nothing about the token."""


class HubClient:
    def __init__(self, env: HubEnv) -> None:
        self.env = env
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}

    def _headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"token {token}", "Accept": "application/json"}

    async def _fetch(self, req: HTTPRequest) -> tuple[int, bytes]:
        try:
            resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        except OSError as e:
            raise HubUnavailable(500, f"cannot reach the hub at {self.env.api_url}: {e}") from e
        return resp.code, resp.body or b""

    async def identify(self, token: str) -> dict[str, Any] | None:
        """The hub's model for ``token`` (``GET {api}/user``), or ``None`` when the hub does not know it.

        Answers are reused for ``auth_cache_seconds`` (the longest a revoked token still works here)."""
        key = hashlib.sha256(token.encode()).hexdigest()
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit and now - hit[0] < self.env.auth_cache_seconds:
            return hit[1]
        try:
            model = await self._ask_hub(token)
        except HubUnavailable:
            if hit and hit[1] is not None and now - hit[0] < STALE_IF_HUB_DOWN_SECONDS:
                return hit[1]
            raise
        if len(self._cache) >= CACHE_MAX:
            self._cache = {
                k: v for k, v in self._cache.items() if now - v[0] < self.env.auth_cache_seconds
            }
        self._cache[key] = (now, model)
        return model

    async def _ask_hub(self, token: str) -> dict[str, Any] | None:
        code, body = await self._fetch(
            HTTPRequest(f"{self.env.api_url}/user", headers=self._headers(token), request_timeout=30)
        )
        if code == 403 or code == 401:
            return None
        if code >= 500 or code == 599:
            raise HubUnavailable(502, f"the hub answered {code} when checking a token")
        if code >= 400:
            raise HTTPError(500, f"failed to check authorization with the hub ({code}): {_reason(body)}")
        model: dict[str, Any] = json.loads(body)
        return model

    def forget(self, token: str) -> None:
        self._cache.pop(hashlib.sha256(token.encode()).hexdigest(), None)

    async def exchange_code(self, code: str, verifier: str) -> str:
        """Authorization code → access token; the client secret is this server's API token (form body)."""
        body = urlencode(
            {
                "client_id": self.env.client_id,
                "client_secret": self.env.api_token,
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.env.oauth_callback_url,
                "code_verifier": verifier,
            }
        )
        headers = self._headers(self.env.api_token)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, raw = await self._fetch(
            HTTPRequest(
                f"{self.env.api_url}/oauth2/token",
                method="POST",
                body=body,
                headers=headers,
                request_timeout=30,
            )
        )
        if status != 200:
            raise HTTPError(500, f"the hub refused the login code ({status}): {_reason(raw)}")
        token = json.loads(raw).get("access_token")
        if not isinstance(token, str) or not token:
            raise HTTPError(500, "the hub's token reply had no access_token")
        return token

    async def post_activity(self, body: dict[str, Any]) -> int:
        headers = self._headers(self.env.api_token)
        headers["Content-Type"] = "application/json"
        try:
            resp = await AsyncHTTPClient().fetch(
                HTTPRequest(
                    self.env.activity_url,
                    method="POST",
                    body=json.dumps(body),
                    headers=headers,
                    request_timeout=30,
                ),
                raise_error=False,
            )
        except (OSError, HTTPClientError):
            return 599
        return int(resp.code)


def _reason(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace")
    if isinstance(data, dict):
        return str(data.get("error_description") or data.get("message") or data.get("error") or data)
    return str(data)[:200]
