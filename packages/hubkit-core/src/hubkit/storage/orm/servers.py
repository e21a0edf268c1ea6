"""User servers. A row exists from the first spawn request until the server is deleted.

``status`` is the state machine's truth; ``state`` is the backend's opaque JSON, written *before* the backend
creates anything outside the hub, so a hub killed mid-spawn can find what it started.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Enum, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..types import UTCDateTime
from .base import Base, utcnow

if TYPE_CHECKING:
    from .users import User


class ServerStatus(enum.StrEnum):
    STOPPED = "stopped"
    QUEUED = "queued"  # waiting in the admission queue
    STARTING = "starting"  # backend start / readiness check in progress
    RUNNING = "running"  # ready and routed
    STOPPING = "stopping"


class Server(Base):
    __tablename__ = "servers"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_servers_user_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    display_name: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[ServerStatus] = mapped_column(
        Enum(ServerStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=ServerStatus.STOPPED,
        index=True,
    )
    backend: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    url: Mapped[str | None] = mapped_column(String(1024), nullable=True)  # endpoint: http://127.0.0.1:4123
    user_options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_activity: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # richer activity reported by hubkit-singleuser: kernels busy/idle, open connections...
    activity: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    current_spawn_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # which hub process drives this server right now, and until when (multi-hub leases)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship(back_populates="servers", lazy="joined")
