"""Storage: SQLAlchemy 2 (asyncio) models, engine setup, column types and migrations.

Everything the hub knows lives here, so a restarted hub, or a second hub process on the same PostgreSQL,
finds it all. Only the core's services touch these rows; plugins see :mod:`hubkit.interfaces` objects.
"""
