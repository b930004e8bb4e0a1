"""Projections as functions of events, over an in-memory row store."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pytest

from tutorlane.adapters.flow_files import SHIPPED_FLOWS, load_course_file
from tutorlane.domain.course import BKTParameters
from tutorlane.projections.base import Key, LoggedEvent, Row
from tutorlane.projections.interaction_log import InteractionLogProjection
from tutorlane.projections.knowledge_state import (
    KnowledgeStateProjection,
    SkillParameters,
)
from tutorlane.projections.next_steps import NextStepsProjection
from tutorlane.tests.history import COURSE, answer, hint

KEYS = {
    "interaction_log": ("student", "seq"),
    "knowledge_state": ("student", "course", "skill"),
    "next_steps": ("student",),
}


class MemoryRowStore:
    """Tables as dictionaries keyed like the SQL ones."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[Key, Row]] = {name: {} for name in KEYS}

    def key(self, table: str, row: Row) -> Key:
        return tuple(row[column] for column in KEYS[table])

    def fetch(self, table: str, keys: Collection[Key]) -> dict[Key, Row]:
        rows = self.tables[table]
        return {key: dict(rows[key]) for key in keys if key in rows}

    def insert(self, table: str, rows: Sequence[Row]) -> None:
        for row in rows:
            key = self.key(table, row)
            assert key not in self.tables[table], f"duplicate {key}"
            self.tables[table][key] = dict(row)

    def upsert(self, table: str, rows: Sequence[Row]) -> None:
        for row in rows:
            self.tables[table][self.key(table, row)] = dict(row)


def logged(*events: object) -> list[LoggedEvent]:
    return [LoggedEvent(index + 1, event) for index, event in enumerate(events)]  # type: ignore[arg-type]


REFERENCE = BKTParameters(prior=0.3, learn=0.1, guess=0.2, slip=0.1)


def reference_parameters() -> SkillParameters:
    """The issue's reference parameters for two skills of the course."""
    return SkillParameters({}, {"place-value": REFERENCE, "addition": REFERENCE})


def test_knowledge_state_follows_the_reference_vector_across_batches() -> None:
    projection = KnowledgeStateProjection(reference_parameters())
    rows = MemoryRowStore()
    answers = [
        answer("s1", seq, correct=bool(c))
        for seq, c in enumerate([0, 1, 1, 0, 1, 1, 1], 1)
    ]
    events = logged(*answers)

    seen = []
    for event in events:
        projection.apply([event], rows)
        seen.append(
            rows.tables["knowledge_state"][("s1", COURSE, "place-value")]["p_mastery"]
        )

    expected_after = [
        0.145763,
        0.490909,
        0.831438,
        0.443265,
        0.803615,
        0.953642,
        0.990382,
    ]
    assert seen == pytest.approx(expected_after, abs=5e-7)
    row = rows.tables["knowledge_state"][("s1", COURSE, "place-value")]
    assert (row["attempts"], row["correct"], row["mastered"]) == (7, 5, True)
    assert row["last_seq"] == 7


def test_one_batch_gives_the_same_rows_as_one_event_at_a_time() -> None:
    projection = KnowledgeStateProjection(reference_parameters())
    events = logged(
        answer("s1", 1, correct=True),
        answer("s2", 1, correct=False, skill="addition"),
        hint("s1", 2),
        answer("s1", 3, correct=False),
        answer("s1", 4, correct=True, skill="addition"),
    )
    together, apart = MemoryRowStore(), MemoryRowStore()

    projection.apply(events, together)
    for event in events:
        projection.apply([event], apart)

    assert together.tables == apart.tables
    assert len(together.tables["knowledge_state"]) == 3


def test_the_interaction_log_has_one_row_per_answer_and_none_for_hints() -> None:
    rows = MemoryRowStore()
    InteractionLogProjection().apply(
        logged(
            answer("s1", 1, correct=True), hint("s1", 2), answer("s1", 3, correct=False)
        ),
        rows,
    )

    log = rows.tables["interaction_log"]
    assert sorted(log) == [("s1", 1), ("s1", 3)]
    assert log[("s1", 3)]["correct"] is False
    assert log[("s1", 3)]["notification_id"] == 3
    assert log[("s1", 1)]["answered_at"].year == 2026


def test_fitted_parameters_win_over_the_course_and_change_the_fingerprint() -> None:
    course = load_course_file(SHIPPED_FLOWS / "maths-primary.yaml")
    from_course = SkillParameters({COURSE: course})
    fitted = SkillParameters(
        {COURSE: course},
        {"place-value": BKTParameters(0.5, 0.2, 0.1, 0.05)},
    )

    declared = course.skills["place-value"].bkt
    assert from_course(COURSE, "place-value") == declared
    assert fitted(COURSE, "place-value").prior == 0.5
    assert fitted(COURSE, "addition") == course.skills["addition"].bkt
    assert from_course.fingerprint() != fitted.fingerprint()
    assert from_course(COURSE, "no-such-skill") == BKTParameters()


def test_students_of_a_course_this_process_lacks_get_no_plan_and_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    course = load_course_file(SHIPPED_FLOWS / "maths-primary.yaml")
    projection = NextStepsProjection(
        {COURSE: course}, SkillParameters({COURSE: course})
    )
    rows = MemoryRowStore()
    events = [
        answer(f"s{n}", 1, correct=True, course="another-course") for n in range(3)
    ] + [answer("s9", 1, correct=True)]

    projection.apply(logged(*events), rows)

    plans = {key[0]: row["plan"] for key, row in rows.tables["next_steps"].items()}
    assert plans["s0"] == plans["s1"] == plans["s2"] == ""
    assert plans["s9"] != "", "the course it has is planned as before"
    warnings = [r for r in caplog.records if "another-course" in r.getMessage()]
    assert len(warnings) == 1
