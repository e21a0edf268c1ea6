"""The admission queue shared by hub replicas on PostgreSQL (:mod:`hubkit.spawn.pg_queue`): one row per spawn
waiting for, or holding, one of the hub's ``concurrent_spawn_limit`` slots. Unused on SQLite (one hub process, an
in-process queue)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..types import UTCDateTime
from .base import Base, utcnow


class QueueEntry(Base):
    __tablename__ = "spawn_queue"

    # the queue's order: ids are drawn while holding the queue's lock, so id order is arrival (and commit) order
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # the waiting process's instance (spawn/owners.py)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    enqueued: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    admitted: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # NULL: still waiting
