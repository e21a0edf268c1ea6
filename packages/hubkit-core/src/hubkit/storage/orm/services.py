"""Hub services (e.g. an external culler) that hold API tokens of their own.

Rows from ``[[services]]`` (``from_config``) are rewritten at every hub start; ``process`` is what the supervisor
of a managed service last recorded (host, pid, restarts, last exit), so any hub process can show it and a
restarted hub can find a service process a killed hub left behind.
"""

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
    command: Mapped[list[str]] = mapped_column(JSON, default=list)
    process: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    oauth_no_confirm: Mapped[bool] = mapped_column(Boolean, default=False)
    # who may log in to it: {"all": bool, "users": [...], "groups": [...]} (access:services!service=<name>)
    access: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
