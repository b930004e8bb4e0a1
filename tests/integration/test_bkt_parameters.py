"""The bkt_parameters table on SQLite and on MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tutorlane.adapters.bkt_parameters import (
    bkt_parameters,
    load_parameters,
    save_parameters,
)
from tutorlane.adapters.schema import upgrade_database
from tutorlane.domain.bkt_fitting import FittedSkill
from tutorlane.domain.course import BKTParameters


@pytest.fixture(params=["sqlite", "mariadb"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database, as `tutorlane migrate` leaves it."""
    if request.param == "sqlite":
        database = f"sqlite:///{tmp_path / 'read.db'}"
    else:
        database = request.getfixturevalue("mariadb_database_url")
    upgrade_database(database)
    yield database


def fitted(skill: str, prior: float, answers: int = 10) -> FittedSkill:
    params = BKTParameters(prior=prior, learn=0.2, guess=0.25, slip=0.05, forget=0.01)
    return FittedSkill(skill, params, answers, 3, -1.0, 5)


def test_nothing_is_loaded_before_anything_was_fitted(url: str) -> None:
    assert load_parameters(url) == {}


def test_saved_parameters_load_back_per_skill(url: str) -> None:
    saved = save_parameters(url, [fitted("skill-1", 0.4), fitted("skill-2", 0.7)])

    assert saved == 2
    assert load_parameters(url) == {
        "skill-1": fitted("skill-1", 0.4).params,
        "skill-2": fitted("skill-2", 0.7).params,
    }


def test_a_new_fit_replaces_its_skills_and_keeps_the_others(url: str) -> None:
    save_parameters(url, [fitted("skill-1", 0.4), fitted("skill-2", 0.7)], 100.0)
    save_parameters(url, [fitted("skill-2", 0.5, answers=99)], 200.0)

    loaded = load_parameters(url)
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(bkt_parameters.c.skill, bkt_parameters.c.fitted_at,
                      bkt_parameters.c.answers).order_by(bkt_parameters.c.skill)
        ).all()  # fmt: skip
    engine.dispose()
    assert loaded["skill-1"].prior == 0.4 and loaded["skill-2"].prior == 0.5
    assert [tuple(row) for row in rows] == [
        ("skill-1", 100.0, 10),
        ("skill-2", 200.0, 99),
    ]
