"""The opaque login state handed to the core between ``start_login`` and ``complete_login``.

The core keeps it in a signed, HttpOnly cookie, so it is tamper-evident there; here it only has to carry
what the callback needs (the ``state`` value, nonce, PKCE verifier, where to go next, when it was issued).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from authlib.common.security import generate_token

from .refusal import LoginRefused

_VERSION = "v1"


class LoginExpired(LoginRefused):
    """A login attempt older than ``login_timeout``."""


@dataclass(frozen=True)
class LoginState:
    state: str
    nonce: str
    verifier: str
    next_url: str
    issued_at: float

    @classmethod
    def new(cls, next_url: str) -> LoginState:
        return cls(
            state=generate_token(32),
            nonce=generate_token(32),
            verifier=generate_token(64),
            next_url=safe_next_url(next_url),
            issued_at=time.time(),
        )

    def encode(self) -> str:
        raw = json.dumps(asdict(self), separators=(",", ":")).encode()
        return f"{_VERSION}.{base64.urlsafe_b64encode(raw).decode().rstrip('=')}"

    @classmethod
    def decode(cls, value: str) -> LoginState:
        unreadable = LoginRefused("This login attempt could not be read (it was changed or is incomplete). "
                                  "Start again.", reason="login state unreadable")
        version, _, body = (value or "").partition(".")
        if version != _VERSION or not body:
            raise unreadable
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            return cls(
                state=str(data["state"]),
                nonce=str(data["nonce"]),
                verifier=str(data["verifier"]),
                next_url=safe_next_url(str(data["next_url"])),
                issued_at=float(data["issued_at"]),
            )
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise unreadable from None

    def check_age(self, timeout: float, now: float | None = None) -> None:
        age = (time.time() if now is None else now) - self.issued_at
        if age > timeout or age < -300:
            raise LoginExpired("This login attempt has expired. Start the login again.",
                               reason=f"login attempt expired ({age:.0f} s old)")


def safe_next_url(next_url: str) -> str:
    """Only same-site paths: an absolute or scheme-relative ``next`` would make the hub an open redirect."""
    parts = urlsplit(next_url or "")
    if parts.scheme or parts.netloc or not next_url.startswith("/") or next_url.startswith("//"):
        return ""
    if "\\" in next_url or any(ord(c) < 32 for c in next_url):
        return ""
    return next_url
