"""HMAC-signed cookie values bound to the cookie name, with an issue time for expiry.

Format: ``base64url(value).issued.hex(hmac_sha256(secret, name|value|issued))``. The name is part of the
MAC so a value signed for one cookie cannot be replayed as another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time


def _mac(secret: bytes, name: str, payload: str, issued: str) -> str:
    return hmac.new(secret, f"{name}|{payload}|{issued}".encode(), hashlib.sha256).hexdigest()


def sign(secret: bytes, name: str, value: str, *, now: float | None = None) -> str:
    payload = base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")
    issued = str(int(now if now is not None else time.time()))
    return f"{payload}.{issued}.{_mac(secret, name, payload, issued)}"


def unsign(
    secret: bytes, name: str, signed: str | None, *, max_age: float, now: float | None = None
) -> str | None:
    """The value, or ``None`` if missing, tampered with or older than ``max_age`` seconds."""
    if not signed or len(signed) > 4096:
        return None
    parts = signed.split(".")
    if len(parts) != 3:
        return None
    payload, issued, mac = parts
    if not hmac.compare_digest(mac, _mac(secret, name, payload, issued)):
        return None
    try:
        age = (now if now is not None else time.time()) - int(issued)
        value = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if age > max_age or age < -300:
        return None
    return value
