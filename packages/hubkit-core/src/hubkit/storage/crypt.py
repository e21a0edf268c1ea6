"""Encryption at rest for upstream credentials (``users.auth_state``), with keys owned by each hub.

A :class:`CryptKeeper` instance belongs to one hub's :class:`~hubkit.storage.access.Storage` and travels in the
``info`` of the sessions it makes, so two hubs in one process (tests, replicas) each use their own keys. The
``User.auth_state`` property seals and opens values through the keeper of the session that loaded or stores the
row; decryption happens on first access, not on every load of a user.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import event
from sqlalchemy.orm import Session, object_session

SESSION_KEY = "hubkit.crypt"  # where a session's keeper lives in ``Session.info``
NO_KEY = "no encryption key configured (set [hub] crypt_keys or HUBKIT_CRYPT_KEY)"
_PENDING = "_hubkit_unsealed"  # column -> plain value set on a row before any keeper was known
_KEEPER = "_hubkit_crypt"  # the keeper of the session that loaded a row (so detached rows still open)


class CryptKeeper:
    """Fernet keys (newest first, so keys can be rotated). Without a key nothing can be sealed: the hub refuses
    rather than store plain text."""

    def __init__(self, keys: Sequence[str] | None = None) -> None:
        if keys is None:
            raw = os.environ.get("HUBKIT_CRYPT_KEY", "")
            keys = [k.strip() for k in raw.split(";") if k.strip()]
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys]) if keys else None

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def encrypt(self, data: bytes) -> str:
        if self._fernet is None:
            raise RuntimeError(NO_KEY)
        return self._fernet.encrypt(data).decode()

    def decrypt(self, token: str) -> bytes:
        if self._fernet is None:
            raise RuntimeError(NO_KEY)
        try:
            return self._fernet.decrypt(token.encode())
        except InvalidToken as exc:
            raise RuntimeError("encrypted value cannot be decrypted with the configured keys") from exc

    def seal(self, value: Any) -> str | None:
        return None if value is None else self.encrypt(json.dumps(value).encode())

    def open(self, sealed: str | None) -> Any:
        return None if sealed is None else json.loads(self.decrypt(sealed))


def keeper_of(session: Session | None) -> CryptKeeper | None:
    return session.info.get(SESSION_KEY) if session is not None else None


def _keeper(row: Any) -> CryptKeeper | None:
    return keeper_of(object_session(row)) or row.__dict__.get(_KEEPER)


def read_sealed(row: Any, column: str) -> Any:
    """The plain value of an encrypted column of ``row`` (pending plain value first)."""
    pending = row.__dict__.get(_PENDING)
    if pending and column in pending:
        return pending[column]
    sealed = getattr(row, column)
    if sealed is None:
        return None
    keeper = _keeper(row)
    if keeper is None:
        raise RuntimeError(NO_KEY)
    return keeper.open(sealed)


def write_sealed(row: Any, column: str, value: Any) -> None:
    """Seal now when the row's keeper is known, else at the next flush of the session it is added to."""
    keeper = _keeper(row)
    if keeper is None:
        row.__dict__.setdefault(_PENDING, {})[column] = value
        return
    row.__dict__.get(_PENDING, {}).pop(column, None)
    setattr(row, column, keeper.seal(value))


def seal_on_flush(session: Session, _context: Any, _instances: Any) -> None:
    for row in [*session.new, *session.dirty]:
        pending = row.__dict__.pop(_PENDING, None)
        if not pending:
            continue
        keeper = keeper_of(session)
        if keeper is None:
            raise RuntimeError(NO_KEY)
        for column, value in pending.items():
            setattr(row, column, keeper.seal(value))


def remember_keeper(row: Any, context: Any) -> None:
    keeper = keeper_of(context.session)
    if keeper is not None:
        row.__dict__[_KEEPER] = keeper


event.listen(Session, "before_flush", seal_on_flush)
