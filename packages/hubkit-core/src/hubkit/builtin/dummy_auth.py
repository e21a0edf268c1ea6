"""The development authenticator: any username, with an optional shared password.

It refuses to start on a non-loopback address unless explicitly allowed, so a demo config copied to a server
cannot become an open door.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError
from ..interfaces import AuthResult, Credentials, JSONDict, LoginKind, UserInfo
from ..plugins import hookimpl
from ..plugins.registry import BackendRegistry, HubInfo


class DummyAuthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(None, description="Shared password; unset means any password is accepted.")
    allow_non_loopback: bool = Field(
        False, description="Allow running on a public address. Anyone who can reach the hub can log in."
    )


def _is_loopback(ip: str) -> bool:
    if ip in ("localhost", ""):
        return ip == "localhost"
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


class DummyAuthenticator:
    login_kind: ClassVar[LoginKind] = LoginKind.FORM
    display_name: ClassVar[str] = "Dummy (development only)"

    def __init__(self, config: DummyAuthConfig, hub: HubInfo) -> None:
        self.config = config
        self.hub = hub

    async def startup(self) -> None:
        if not self.config.allow_non_loopback and not _is_loopback(self.hub.public_ip):
            raise ConfigError(
                f"the dummy authenticator lets anyone in and the hub listens on {self.hub.public_ip!r}, "
                "not a loopback address; set [auth.dummy] allow_non_loopback = true to accept that",
                key="auth.backend",
            )

    async def shutdown(self) -> None:
        return None

    async def authenticate(self, credentials: Credentials) -> AuthResult | None:
        if not credentials.username:
            return None
        expected = self.config.password
        if expected is not None and not hmac.compare_digest(credentials.password.encode(), expected.encode()):
            return None
        return AuthResult(name=credentials.username)

    def login_url(self, next_url: str) -> str:
        return "/hub/login"

    async def refresh_user(self, user: UserInfo, auth_state: JSONDict | None) -> AuthResult | bool:
        return True

    def logout_url(self, user: UserInfo, auth_state: JSONDict | None) -> str | None:
        return None


@hookimpl
def hubkit_register_authenticators(registry: BackendRegistry[Any]) -> None:
    registry.add(
        "dummy", DummyAuthenticator, config=DummyAuthConfig, description="any username (development)"
    )
