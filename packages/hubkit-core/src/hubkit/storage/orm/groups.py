"""Groups and membership."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Column, ForeignKey, Integer, String, Table, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, metadata, table_of

if TYPE_CHECKING:
    from .users import User

user_group = Table(
    "user_group",
    metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    users: Mapped[list[User]] = relationship(secondary=user_group, back_populates="groups", lazy="selectin")


def group_names_of(user_id: Any) -> Any:
    """A correlated scalar subquery: the group names of the user whose id is ``user_id`` (a column of the
    outer statement), as one string; :func:`hubkit.storage.reads.split_joined` splits it."""
    from ..reads import joined

    g = table_of(Group)
    return (
        select(joined(g.c.name))
        .select_from(user_group.join(g, g.c.id == user_group.c.group_id))
        .where(user_group.c.user_id == user_id)
        .scalar_subquery()
    )
