"""Checking API tokens imported from JupyterHub against the hash JupyterHub stored for them.

JupyterHub stores ``<algorithm>:<rounds>:<salt>:<hexdigest>``: the digest of the salt followed by the token
repeated ``rounds`` times (1 round for tokens it generated itself, 16384 for tokens an operator supplied in
its config), plus the token's first 4 characters as a lookup prefix. Only imported tokens are checked this
way; hubkit's own keep their unsalted SHA-256 and their single indexed lookup (:mod:`hubkit.auth.tokens`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..storage.orm import JupyterHubTokenHash

PREFIX_LENGTH = 4
MIN_LENGTH = 8  # JupyterHub refuses shorter tokens, so no imported token is shorter
MAX_ROUNDS = 1_000_000  # far above JupyterHub's 16384; bounds the work a stored hash can ask for
ALGORITHMS = frozenset({"sha512", "sha384", "sha256", "sha1", "md5"})
_CHUNK = 1 << 16  # bytes hashed per update when a token is repeated for many rounds


@dataclass(frozen=True)
class JupyterHubHash:
    algorithm: str
    rounds: int
    salt: str
    digest: str

    @classmethod
    def parse(cls, stored: str) -> JupyterHubHash | None:
        """The parts of a stored hash, or ``None`` when it is not one hubkit can check."""
        parts = stored.split(":")
        if len(parts) != 4:
            return None
        algorithm, rounds, salt, digest = parts
        if algorithm not in ALGORITHMS or not rounds.isdigit() or not 1 <= int(rounds) <= MAX_ROUNDS:
            return None
        if not digest or any(c not in "0123456789abcdef" for c in digest):
            return None
        return cls(algorithm, int(rounds), salt, digest)

    def matches(self, secret: str) -> bool:
        h = hashlib.new(self.algorithm)
        h.update(self.salt.encode("utf-8"))
        token = secret.encode("utf-8", "replace")
        per_chunk = max(1, _CHUNK // max(1, len(token)))
        left = self.rounds
        while left:
            n = min(left, per_chunk)
            h.update(token * n)  # the same digest as n separate updates, without n Python-level calls
            left -= n
        return hmac.compare_digest(h.hexdigest(), self.digest)


def prefix_of(secret: str) -> str:
    return secret[:PREFIX_LENGTH]


async def find_imported(session: AsyncSession, secret: str) -> int | None:
    """The id of the imported token ``secret`` belongs to: one prefix-indexed query, then a hash check per
    candidate (tokens sharing a 4-character prefix are few)."""
    if len(secret) < MIN_LENGTH:
        return None
    rows = (
        await session.execute(
            select(JupyterHubTokenHash.token_id, JupyterHubTokenHash.hashed).where(
                JupyterHubTokenHash.prefix == prefix_of(secret), JupyterHubTokenHash.token_id.is_not(None)
            )
        )
    ).all()
    for token_id, stored in rows:
        parsed = JupyterHubHash.parse(stored)
        if token_id is not None and parsed is not None and parsed.matches(secret):
            return token_id
    return None
