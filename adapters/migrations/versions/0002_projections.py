"""Projections: their bookkeeping, the first generation of their tables, and views.

Each projection's tables exist in generations (`interaction_log_g1`, ...) and a view
named after the table shows the live one; `tutorlane projections rebuild` makes the
next generations (adapters/sql_projections.py, which defines the same columns).

Revision ID: 0002
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
NAME = sa.String(64)
PROJECTIONS = {"interaction_log": 1, "knowledge_state": 1}


def upgrade() -> None:
    """Create the bookkeeping table and generation 1 of each projection."""
    state = op.create_table(
        "projection_state",
        sa.Column("name", NAME, primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("position", ID, nullable=False),
        sa.Column("fingerprint", NAME, nullable=False),
        sa.Column("rebuild_version", sa.Integer(), nullable=True),
        sa.Column("rebuild_generation", sa.Integer(), nullable=True),
        sa.Column("rebuild_position", ID, nullable=True),
        sa.Column("rebuild_fingerprint", NAME, nullable=True),
        sa.Column("rebuild_owner", sa.String(200), nullable=True),
        sa.Column("rebuild_started_at", sa.Double(), nullable=True),
        sa.Column("rebuild_lease_until", sa.Double(), nullable=True),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "interaction_log_g1",
        sa.Column("student", NAME, primary_key=True),
        sa.Column("seq", ID, primary_key=True, autoincrement=False),
        sa.Column("notification_id", ID, nullable=False),
        sa.Column("course", NAME, nullable=False),
        sa.Column("node", NAME, nullable=False),
        sa.Column("skill", NAME, nullable=False),
        sa.Column("answer", sa.String(512), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("seconds_taken", sa.Double(), nullable=False),
        sa.Column("hints_used", sa.Integer(), nullable=False),
        sa.Column("answered_at", TIME, nullable=False),
        **TABLE_OPTIONS,
    )
    op.create_index(
        "interaction_log_g1_skill_idx", "interaction_log_g1", ["course", "skill"]
    )
    op.create_table(
        "knowledge_state_g1",
        sa.Column("student", NAME, primary_key=True),
        sa.Column("course", NAME, primary_key=True),
        sa.Column("skill", NAME, primary_key=True),
        sa.Column("p_mastery", sa.Double(), nullable=False),
        sa.Column("mastered", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("correct", sa.Integer(), nullable=False),
        sa.Column("prior", sa.Double(), nullable=False),
        sa.Column("learn", sa.Double(), nullable=False),
        sa.Column("guess", sa.Double(), nullable=False),
        sa.Column("slip", sa.Double(), nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("last_seq", ID, nullable=False),
        **TABLE_OPTIONS,
    )
    for name in PROJECTIONS:
        op.execute(f"CREATE VIEW {name} AS SELECT * FROM {name}_g1")  # noqa: S608
    op.bulk_insert(
        state,
        [
            {
                "name": name,
                "version": version,
                "generation": 1,
                "position": 0,
                "fingerprint": "",
            }
            for name, version in PROJECTIONS.items()
        ],
    )


def downgrade() -> None:
    """Drop the projections: they can be rebuilt from the event store at any time."""
    for name in PROJECTIONS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    existing = sa.inspect(op.get_bind()).get_table_names()
    for table in existing:
        if any(table.startswith(f"{name}_g") for name in PROJECTIONS):
            op.drop_table(table)
    op.drop_table("projection_state")
