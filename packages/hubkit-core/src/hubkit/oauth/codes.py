"""Authorization codes: random, stored as SHA-256 hashes, single use, valid for 300 seconds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.tokens import hash_secret
from ..storage.orm import OAuthClient, OAuthCode

CODE_TTL = timedelta(seconds=300)


async def issue_code(
    session: AsyncSession,
    *,
    client: str,
    user_id: int,
    redirect_uri: str,
    scopes: list[str],
    session_id: str | None,
    code_challenge: str | None,
    code_challenge_method: str | None,
) -> str:
    code = secrets.token_urlsafe(24)[:30]
    now = datetime.now(UTC)
    await session.execute(delete(OAuthCode).where(OAuthCode.expires_at < now))
    session.add(
        OAuthCode(
            code_hash=hash_secret(code),
            client_identifier=client,
            user_id=user_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            code_challenge=code_challenge,
            code_challenge_method=code_challenge_method,
            session_id=session_id,
            expires_at=now + CODE_TTL,
            extra={},
        )
    )
    return code


async def take_code(session: AsyncSession, code: str, client: str) -> OAuthCode | None:
    """Fetch and delete (single use) a live code issued to ``client``.

    The DELETE decides: of several exchanges of one code at the same moment, only the one whose DELETE removed
    the row gets it (a SELECT first would let them all see it)."""
    if not code or len(code) > 256:
        return None
    row = (
        await session.execute(select(OAuthCode).where(OAuthCode.code_hash == hash_secret(code)))
    ).scalar_one_or_none()
    if row is None:
        return None
    session.expunge(row)
    gone = await session.execute(delete(OAuthCode).where(OAuthCode.id == row.id))
    if gone.rowcount != 1:  # type: ignore[attr-defined]
        return None  # another exchange took it first
    if row.client_identifier != client or row.expires_at <= datetime.now(UTC):
        return None
    return row


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def pkce_ok(challenge: str, verifier: str) -> bool:
    return hmac.compare_digest(s256(verifier), challenge)


async def find_client(session: AsyncSession, client_id: str) -> OAuthClient | None:
    """The registered client, or ``None`` for unknown (or absurdly long) ids."""
    if not client_id or len(client_id) > 255:
        return None
    return (
        await session.execute(select(OAuthClient).where(OAuthClient.identifier == client_id))
    ).scalar_one_or_none()
