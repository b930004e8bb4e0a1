"""The agents' read models: the Navigator's next steps and the Analyst's insights.

Revision ID: 0003
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
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
PROJECTIONS = ("next_steps", "analyst_insights")


def upgrade() -> None:
    """Create generation 1 of both projections, their views and bookkeeping rows."""
    op.create_table(
        "next_steps_g1",
        sa.Column("student", NAME, primary_key=True),
        sa.Column("course", NAME, nullable=False),
        sa.Column("after_node", NAME, nullable=False),
        sa.Column("plan", sa.String(255), nullable=False),
        sa.Column("last_seq", ID, nullable=False),
        sa.Column("last_at", sa.Double(), nullable=False),
        sa.Column("planned_at", TIME, nullable=False),
        sa.Column("knowledge", sa.Text(), nullable=False),
        sa.Column("recent", sa.Text(), nullable=False),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "analyst_insights_g1",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("student", NAME, nullable=False),
        sa.Column("course", NAME, nullable=False),
        sa.Column("skill", NAME, nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("misconception", sa.String(512), nullable=False),
        sa.Column("evidence", sa.String(512), nullable=False),
        sa.Column("remediation_node", NAME, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("recorded_at", TIME, nullable=False),
        sa.Column("notification_id", ID, nullable=False),
        **TABLE_OPTIONS,
    )
    op.create_index(
        "analyst_insights_g1_student_idx", "analyst_insights_g1", ["student"]
    )
    for name in PROJECTIONS:
        op.execute(f"CREATE VIEW {name} AS SELECT * FROM {name}_g1")  # noqa: S608
    state = sa.table(
        "projection_state",
        sa.column("name"),
        sa.column("version"),
        sa.column("generation"),
        sa.column("position"),
        sa.column("fingerprint"),
    )
    op.bulk_insert(
        state,
        [
            {
                "name": name,
                "version": 1,
                "generation": 1,
                "position": 0,
                "fingerprint": "",
            }
            for name in PROJECTIONS
        ],
    )


def downgrade() -> None:
    """Drop both projections; they can be rebuilt from the event store."""
    for name in PROJECTIONS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
        for table in sa.inspect(op.get_bind()).get_table_names():
            if table.startswith(f"{name}_g"):
                op.drop_table(table)
        op.execute(
            sa.text("DELETE FROM projection_state WHERE name = :name").bindparams(
                name=name
            )
        )
