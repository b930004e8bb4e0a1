"""Fitted Bayesian Knowledge Tracing parameters, one row per skill.

Revision ID: 0004
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def upgrade() -> None:
    """Create the table `tutorlane replay fit` writes and knowledge tracing reads."""
    op.create_table(
        "bkt_parameters",
        sa.Column("skill", sa.String(64), primary_key=True),
        sa.Column("prior", sa.Double(), nullable=False),
        sa.Column("learn", sa.Double(), nullable=False),
        sa.Column("guess", sa.Double(), nullable=False),
        sa.Column("slip", sa.Double(), nullable=False),
        sa.Column("forget", sa.Double(), nullable=False, server_default="0"),
        sa.Column("fitted_at", sa.Double(), nullable=False),
        sa.Column("answers", sa.Integer(), nullable=False),
        **TABLE_OPTIONS,
    )


def downgrade() -> None:
    """Drop the fitted parameters (the course files' own remain)."""
    op.drop_table("bkt_parameters")
