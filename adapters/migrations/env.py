"""Alembic's entry point: runs the migrations on the connection it is handed."""

from __future__ import annotations

from alembic import context

# NOTE: tutorlane calls Alembic through adapters/schema.py, which opens the
# connection (and takes the migration lock) itself; there is no alembic.ini.
connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
