"""Failed login attempts shared by hub replicas on PostgreSQL (:mod:`hubkit.auth.pg_ratelimit`): one row per
attempt and bucket, kept for the rate limit's window. Unused on SQLite (one hub process counts in its memory)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..types import UTCDateTime
from .base import Base, utcnow


class LoginFailure(Base):
    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_bucket_at", "bucket", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # "u <address bucket> <name>" for a (user, address) count, "a <address bucket>" for the address's count
    bucket: Mapped[str] = mapped_column(String(1200))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
