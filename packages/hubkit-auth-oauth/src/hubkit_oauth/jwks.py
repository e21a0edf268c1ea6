"""The provider's signing keys, cached, refetched when a token names a key we have not seen (key rotation).

Refetches caused by unknown key ids are rate-limited so a flood of forged tokens cannot turn the hub into a
load generator against the provider.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from joserfc import jwk
from joserfc.errors import JoseError

from .transport import ProviderHTTP

log = logging.getLogger("hubkit.oauth")


class JWKSCache:
    def __init__(self, http: ProviderHTTP, url: str, *, refetch_interval: float) -> None:
        self.http = http
        self.url = url
        self.refetch_interval = refetch_interval
        self._keys: list[tuple[str | None, Any]] = []
        self._fetched_at: float | None = None

    async def _fetch(self) -> None:
        data = await self.http.get_json(self.url)
        keys: list[tuple[str | None, Any]] = []
        for entry in (data or {}).get("keys", []) if isinstance(data, dict) else []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                keys.append((entry.get("kid"), jwk.import_key(entry)))
            except (JoseError, ValueError, TypeError):
                log.info("ignoring a JWKS key hubkit cannot use (kty=%s)", entry.get("kty"))
        self._keys = keys
        self._fetched_at = time.monotonic()

    def _find(self, kid: str | None, kty: str) -> list[Any]:
        if kid is not None:
            return [key for k, key in self._keys if k == kid]
        return [key for _, key in self._keys if key.key_type == kty]

    async def keys_for(self, kid: str | None, kty: str) -> list[Any]:
        """Candidate keys for a token header; refetches once when the key id is unknown."""
        if self._fetched_at is None:
            await self._fetch()
        found = self._find(kid, kty)
        if found:
            return found
        assert self._fetched_at is not None
        if time.monotonic() - self._fetched_at >= self.refetch_interval:
            log.info("ID token names an unknown signing key; refetching the provider's JWKS")
            await self._fetch()
            found = self._find(kid, kty)
        return found
