"""The cookie secret: from ``HUBKIT_COOKIE_SECRET`` (hex) or a 0600 file, created on first start."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ..errors import ConfigError


def load_cookie_secret(path: str | Path) -> bytes:
    env = os.environ.get("HUBKIT_COOKIE_SECRET")
    if env:
        try:
            return bytes.fromhex(env.strip())
        except ValueError:
            raise ConfigError("must be hex", source="environment", key="HUBKIT_COOKIE_SECRET") from None
    p = Path(path)
    if p.exists():
        if p.stat().st_mode & 0o077:
            raise ConfigError(f"{p} is readable by others; chmod 600 it", key="hub.cookie_secret_file")
        try:
            text = p.read_text().strip()
            return bytes.fromhex(text)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read a hex secret from {p}: {exc}", key="hub.cookie_secret_file"
            ) from None
    p.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret.hex() + "\n")
    return secret
