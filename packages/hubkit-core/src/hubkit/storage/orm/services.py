"""Hub services (e.g. an external culler) that hold API tokens of their own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..types import UTCDateTime
from .base import Base, utcnow


class Service(Base):
    __tablename__ = "services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    url: Mapped[str] = mapped_column(String(1024), default="")
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    display: Mapped[bool] = mapped_column(Boolean, default=True)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    from_config: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
