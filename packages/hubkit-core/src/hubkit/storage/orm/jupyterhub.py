"""API tokens imported from JupyterHub keep JupyterHub's own salted hash, in a table of their own.

hubkit's tokens are found by one indexed query on their SHA-256; JupyterHub's hash is salted, so an imported
token can only be found by its 4-character prefix and then checked against each candidate's hash. Keeping
those rows apart means hubkit's own lookup never reads them. When the token is revoked in hubkit the row
stays with ``token_id`` NULL, so importing the same JupyterHub database again never brings it back.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class JupyterHubTokenHash(Base):
    __tablename__ = "jupyterhub_token_hashes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="SET NULL"), nullable=True, unique=True
    )
    # JupyterHub's prefix: the token's first 4 characters
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    # "<algorithm>:<rounds>:<salt>:<hexdigest>", exactly as JupyterHub stored it
    hashed: Mapped[str] = mapped_column(String(255), unique=True)
