"""API token issue and lookup. Secrets are random, shown once, and stored only as SHA-256 hashes.

Token secrets have 32 hex chars of entropy like JupyterHub's (so clients that validate shape keep working);
SHA-256 without salt is fine for 128-bit random secrets and makes lookup a single indexed query.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..storage.orm import APIToken
from .jupyterhub_tokens import find_imported

# A lifetime beyond this is not a lifetime (and ``now + timedelta`` overflows near 9999-12-31).
MAX_EXPIRES_IN = 100 * 365 * 24 * 3600


MAX_TOKEN_ID = 2**31 - 1  # the id column is a 32-bit integer on PostgreSQL


def parse_token_id(digits: str) -> int | None:
    """A token row id from text, or ``None`` when it cannot be one (so the caller answers 404, not 500)."""
    if not digits.isascii() or not digits.isdigit() or len(digits) > 10:
        return None
    value = int(digits)
    return value if 0 < value <= MAX_TOKEN_ID else None


def new_secret() -> str:
    return secrets.token_hex(16)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def token_values(
    secret: str,
    *,
    user_id: int | None = None,
    service_id: int | None = None,
    server_id: int | None = None,
    scopes: list[str],
    kind: str = "api_token",
    note: str = "",
    expires_in: float | None = None,
    session_id: str | None = None,
    oauth_client: str | None = None,
) -> dict[str, Any]:
    """The column values of a new token row for ``secret`` (hashed here; the secret itself is never stored)."""
    if expires_in is not None and not 0 < expires_in <= MAX_EXPIRES_IN:
        raise ValueError(f"expires_in must be between 1 and {MAX_EXPIRES_IN} seconds")
    now = datetime.now(UTC)
    return {
        "hashed": hash_secret(secret),
        "prefix": secret[:4],
        "user_id": user_id,
        "service_id": service_id,
        "server_id": server_id,
        "kind": kind,
        "note": note,
        "scopes": list(scopes),
        "created": now,
        "expires_at": (now + timedelta(seconds=expires_in)) if expires_in else None,
        "session_id": session_id,
        "oauth_client": oauth_client,
        "extra": {},
    }


async def issue_token(
    session: AsyncSession, *, secret: str | None = None, **fields: Any
) -> tuple[str, APIToken]:
    """Create a token row (flushed, not committed) and return ``(secret, row)``; ``fields`` as for
    :func:`token_values`."""
    secret = secret or new_secret()
    values = token_values(secret, **fields)
    row = APIToken(**values)
    session.add(row)
    await session.flush()
    return secret, row


async def lookup_token(session: AsyncSession, secret: str) -> APIToken | None:
    """The live token for ``secret``; expired tokens are deleted on sight and never returned."""
    if not secret or len(secret) > 256:
        return None
    row = (
        await session.execute(select(APIToken).where(APIToken.hashed == hash_secret(secret)))
    ).scalar_one_or_none()
    if row is None:  # tokens imported from JupyterHub keep its hash
        imported = await find_imported(session, secret)
        row = await session.get(APIToken, imported) if imported is not None else None
    if row is None:
        return None
    if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
        await session.delete(row)
        await session.flush()
        return None
    return row
