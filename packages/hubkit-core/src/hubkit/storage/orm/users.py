"""Users."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..types import EncryptedJSON, UTCDateTime
from .base import Base, utcnow

if TYPE_CHECKING:
    from .groups import Group
    from .servers import Server


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_activity: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    # rotated on logout-everywhere; sessions carry it so old cookies die with it
    cookie_id: Mapped[str] = mapped_column(String(64))
    auth_state: Mapped[Any] = mapped_column(EncryptedJSON, nullable=True)
    user_info: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # consecutive spawn failures, for the failure guard
    spawn_failures: Mapped[int] = mapped_column(Integer, default=0)

    servers: Mapped[list[Server]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True, lazy="selectin"
    )
    groups: Mapped[list[Group]] = relationship(
        secondary="user_group", back_populates="users", lazy="selectin"
    )
