"""oauth_clients / oauth_codes: redirect URIs and descriptions as TEXT

A server's callback URL carries its owner's and its own name (255 characters each, percent-encoded), which
overflowed VARCHAR(1024) on PostgreSQL.

Revision ID: 0003_oauth_uris_text
Revises: 0002_jupyterhub_token_hashes
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_oauth_uris_text"
down_revision: str | Sequence[str] | None = "0002_jupyterhub_token_hashes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (("oauth_clients", "redirect_uri"), ("oauth_clients", "description"), ("oauth_codes", "redirect_uri"))


def upgrade() -> None:
    for table, column in _COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, existing_type=sa.String(1024), type_=sa.Text())


def downgrade() -> None:
    for table, column in _COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, existing_type=sa.Text(), type_=sa.String(1024))
