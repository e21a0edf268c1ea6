"""Alembic environment: always runs on the connection :mod:`hubkit.storage.migrate` hands over."""

from __future__ import annotations

from alembic import context

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run hubkit migrations through `hubkit db upgrade` (hubkit.storage.migrate)")

context.configure(
    connection=connection,
    target_metadata=config.attributes.get("target_metadata"),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
