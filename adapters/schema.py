"""The database schema, brought up to date by Alembic under a migration lock."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy.engine import Engine

from tutorlane.adapters.event_store import create_event_store_engine

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_SECONDS = 120


class MigrationLockTimeout(RuntimeError):
    """Another process kept the migration lock for too long."""


def alembic_config() -> Config:
    """Return Alembic's configuration for tutorlane's migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """Return the newest revision the code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """Return the revision the database is at (None before any migration)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_database(url: str) -> tuple[str | None, str]:
    """Migrate the database at `url` to the newest revision; return (before, after).

    Safe to run from several processes at once: they take turns under a lock (a
    named lock on MariaDB, a file beside the database on SQLite), and a database
    already at the newest revision is left alone.
    """
    engine = create_event_store_engine(url)
    try:
        with migration_lock(engine):
            before = current_revision(engine)
            if before != head_revision():
                with engine.begin() as connection:
                    config = alembic_config()
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
            return before, head_revision()
    finally:
        engine.dispose()


@contextlib.contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Hold the database's migration lock for the duration of the block."""
    if engine.dialect.name == "sqlite":
        database = Path(engine.url.database or "")
        with FileLock(f"{database}.migrate.lock", timeout=LOCK_SECONDS):
            yield
        return

    with engine.connect() as connection:
        got = connection.execute(
            sa.text("SELECT GET_LOCK('tutorlane_migrate', :seconds)"),
            {"seconds": LOCK_SECONDS},
        ).scalar()
        if got != 1:
            raise MigrationLockTimeout(
                f"another process held the migration lock for {LOCK_SECONDS} s; "
                "is a `tutorlane migrate` stuck? Try again when it has finished"
            )
        try:
            yield
        finally:
            connection.execute(sa.text("SELECT RELEASE_LOCK('tutorlane_migrate')"))
