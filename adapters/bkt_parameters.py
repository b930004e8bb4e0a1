"""Fitted BKT parameters per skill, in the `bkt_parameters` table (MariaDB or SQLite).

`replay fit` writes them; the knowledge-state projection reads them, falling back to
the course file's parameters for a skill without a row. The table is made by the
Alembic migration 0004 (`tutorlane migrate`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tutorlane.adapters.event_store import create_event_store_engine
from tutorlane.domain.bkt_fitting import FittedSkill
from tutorlane.domain.course import BKTParameters

metadata = sa.MetaData()

bkt_parameters = sa.Table(
    "bkt_parameters",
    metadata,
    sa.Column("skill", sa.String(64), primary_key=True),
    sa.Column("prior", sa.Double, nullable=False),
    sa.Column("learn", sa.Double, nullable=False),
    sa.Column("guess", sa.Double, nullable=False),
    sa.Column("slip", sa.Double, nullable=False),
    sa.Column("forget", sa.Double, nullable=False, server_default="0"),
    sa.Column("fitted_at", sa.Double, nullable=False),  # Unix seconds
    sa.Column("answers", sa.Integer, nullable=False),  # how many the fit used
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)


def _engine(engine_or_url: Engine | str) -> tuple[Engine, bool]:
    """Return an engine, and whether this module made it (and must dispose of it)."""
    if isinstance(engine_or_url, Engine):
        return engine_or_url, False
    return create_event_store_engine(engine_or_url), True


def save_parameters(
    engine_or_url: Engine | str,
    fitted: Iterable[FittedSkill],
    fitted_at: float | None = None,
) -> int:
    """Replace the stored parameters of the fitted skills; return how many rows.

    Skills not among `fitted` keep their rows. One transaction: a reader sees the
    old parameters or the new ones, never a mix.
    """
    engine, owned = _engine(engine_or_url)
    when = time.time() if fitted_at is None else fitted_at
    rows = [
        {
            "skill": result.skill,
            "prior": result.params.prior,
            "learn": result.params.learn,
            "guess": result.params.guess,
            "slip": result.params.slip,
            "forget": result.params.forget,
            "fitted_at": when,
            "answers": result.answers,
        }
        for result in fitted
    ]
    try:
        with engine.begin() as connection:
            if rows:
                skills = [row["skill"] for row in rows]
                connection.execute(
                    bkt_parameters.delete().where(bkt_parameters.c.skill.in_(skills))
                )
                connection.execute(bkt_parameters.insert(), rows)
    finally:
        if owned:
            engine.dispose()
    return len(rows)


def load_parameters(engine_or_url: Engine | str) -> dict[str, BKTParameters]:
    """Return the stored parameters per skill; empty when none were ever fitted."""
    engine, owned = _engine(engine_or_url)
    try:
        if not sa.inspect(engine).has_table(bkt_parameters.name):
            return {}
        with engine.connect() as connection:
            rows = connection.execute(sa.select(bkt_parameters)).all()
    finally:
        if owned:
            engine.dispose()
    return {
        row.skill: BKTParameters(
            prior=row.prior,
            learn=row.learn,
            guess=row.guess,
            slip=row.slip,
            forget=row.forget,
        )
        for row in rows
    }
