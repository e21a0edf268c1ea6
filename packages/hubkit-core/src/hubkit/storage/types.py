"""Column types: timezone-aware UTC datetimes on every backend, and an encrypted JSON column."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import DateTime, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC (SQLite has no zones) and always returns aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class CryptKeeper:
    """Holds the Fernet keys for :class:`EncryptedJSON`.

    Keys come from config or the ``HUBKIT_CRYPT_KEY`` env var (``;``-separated, newest first, so keys can be
    rotated). Without a key, encrypted values cannot be written: the hub refuses rather than store plain text.
    """

    _fernet: MultiFernet | None = None

    @classmethod
    def configure(cls, keys: list[str] | None = None) -> None:
        if keys is None:
            raw = os.environ.get("HUBKIT_CRYPT_KEY", "")
            keys = [k.strip() for k in raw.split(";") if k.strip()]
        cls._fernet = MultiFernet([Fernet(k.encode()) for k in keys]) if keys else None

    @classmethod
    def enabled(cls) -> bool:
        return cls._fernet is not None

    @classmethod
    def encrypt(cls, data: bytes) -> str:
        if cls._fernet is None:
            raise RuntimeError("no encryption key configured (set [hub] crypt_keys or HUBKIT_CRYPT_KEY)")
        return cls._fernet.encrypt(data).decode()

    @classmethod
    def decrypt(cls, token: str) -> bytes:
        if cls._fernet is None:
            raise RuntimeError("no encryption key configured (set [hub] crypt_keys or HUBKIT_CRYPT_KEY)")
        try:
            return cls._fernet.decrypt(token.encode())
        except InvalidToken as exc:
            raise RuntimeError("encrypted value cannot be decrypted with the configured keys") from exc


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON value encrypted at rest with Fernet (AES-128-CBC + HMAC), e.g. upstream OAuth tokens."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return CryptKeeper.encrypt(json.dumps(value).encode())

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return json.loads(CryptKeeper.decrypt(value))
