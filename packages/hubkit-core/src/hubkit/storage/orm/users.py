"""Users."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, Integer, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .. import crypt
from ..types import UTCDateTime
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
    # upstream credentials, encrypted with the hub's keys: read and write through ``auth_state``
    sealed_auth_state: Mapped[str | None] = mapped_column("auth_state", Text, nullable=True)
    user_info: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # consecutive spawn failures, for the failure guard
    spawn_failures: Mapped[int] = mapped_column(Integer, default=0)

    servers: Mapped[list[Server]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True, lazy="selectin"
    )
    groups: Mapped[list[Group]] = relationship(
        secondary="user_group", back_populates="users", lazy="selectin"
    )

    def __init__(self, *, auth_state: Any = None, **kw: Any) -> None:
        super().__init__(**kw)
        if auth_state is not None:
            self.auth_state = auth_state

    @property
    def auth_state(self) -> Any:
        """The decrypted value; ``RuntimeError`` when the hub has no key or the wrong keys."""
        return crypt.read_sealed(self, "sealed_auth_state")

    @auth_state.setter
    def auth_state(self, value: Any) -> None:
        crypt.write_sealed(self, "sealed_auth_state", value)


event.listen(User, "load", crypt.remember_keeper)
