"""Alembic migrations of tutorlane's database: event store, projections, parameters."""
