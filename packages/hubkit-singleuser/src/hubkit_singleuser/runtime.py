"""The one hub connection of this server process (environment, API client, pending OAuth logins)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from .hubclient import HubClient
from .hubenv import HubEnv

STATE_SECONDS = 600.0


@dataclass
class PendingLogin:
    next_url: str
    verifier: str
    expires: float


@dataclass
class HubConnection:
    env: HubEnv
    client: HubClient
    pending: dict[str, PendingLogin] = field(default_factory=dict)

    def new_login(self, next_url: str) -> tuple[str, str]:
        """Remember a login attempt; returns (state, PKCE verifier). Old attempts expire after 10 minutes."""
        now = time.monotonic()
        self.pending = {k: v for k, v in self.pending.items() if v.expires > now}
        state = secrets.token_urlsafe(16)
        verifier = secrets.token_urlsafe(32)
        self.pending[state] = PendingLogin(next_url, verifier, now + STATE_SECONDS)
        return state, verifier

    def take_login(self, state: str) -> PendingLogin | None:
        p = self.pending.pop(state, None)
        return p if p and p.expires > time.monotonic() else None


_hub: HubConnection | None = None


def hub() -> HubConnection:
    global _hub
    if _hub is None:
        env = HubEnv.from_environ()
        _hub = HubConnection(env, HubClient(env))
    return _hub
