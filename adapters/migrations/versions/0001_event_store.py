"""The event store: every student's events, and the lock that orders their commits.

Databases made before migrations existed already hold these tables (the event store
created them itself): this revision then only adds what is missing.

Revision ID: 0001
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STATE = sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")


def upgrade() -> None:
    """Create the events table and its lock table, with the lock's one row."""
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "stored_events" not in existing:
        op.create_table(
            "stored_events",
            sa.Column("id", ID, primary_key=True, autoincrement=True),
            sa.Column("originator_id", sa.BINARY(16), nullable=False),
            sa.Column("originator_version", ID, nullable=False),
            sa.Column("originator_name", sa.String(255), nullable=True),
            sa.Column("topic", sa.Text(), nullable=False),
            sa.Column("state", STATE, nullable=False),
            sqlite_autoincrement=True,
            **TABLE_OPTIONS,
        )
        op.create_index(
            "stored_events_originator_idx",
            "stored_events",
            ["originator_id", "originator_version"],
            unique=True,
        )
    if "stored_events_lock" not in existing:
        lock = op.create_table(
            "stored_events_lock",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
            sa.Column("inserts", sa.BigInteger(), nullable=False),
            **TABLE_OPTIONS,
        )
        op.bulk_insert(lock, [{"id": 1, "inserts": 0}])


def downgrade() -> None:
    """Refuse: dropping the system of record is never a migration."""
    raise NotImplementedError(
        "the event store is the system of record; drop its tables by hand if you "
        "really mean to lose every student's history"
    )
