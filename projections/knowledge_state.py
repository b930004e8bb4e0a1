"""Knowledge state: each student's probability of mastery of each skill (BKT)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

from tutorlane.domain.course import BKTParameters, Course
from tutorlane.domain.events import AnswerSubmitted
from tutorlane.domain.knowledge import MASTERY_THRESHOLD, observe
from tutorlane.projections.base import (
    Key,
    LoggedEvent,
    Projection,
    Row,
    RowStore,
    utc_time,
)

KNOWLEDGE_STATE = "knowledge_state"

# Parameters of a skill that no loaded course declares and nothing was fitted for.
DEFAULT_PARAMETERS = BKTParameters()

ParameterLookup = Callable[[str, str], BKTParameters]


class SkillParameters:
    """BKT parameters of each skill: fitted ones first, then the course's own."""

    def __init__(
        self,
        courses: Mapping[str, Course],
        fitted: Mapping[str, BKTParameters] | None = None,
    ) -> None:
        self.declared: dict[tuple[str, str], BKTParameters] = {
            (course.id, skill.id): skill.bkt
            for course in courses.values()
            for skill in course.skills.values()
        }
        self.fitted = dict(fitted or {})

    def __call__(self, course: str, skill: str) -> BKTParameters:
        """Return the parameters of `skill` in `course`."""
        fitted = self.fitted.get(skill)
        if fitted is not None:
            return fitted
        return self.declared.get((course, skill), DEFAULT_PARAMETERS)

    def fingerprint(self) -> str:
        """Return a short digest of every parameter, to tell when they changed."""
        listing = sorted(
            (course, skill, params.prior, params.learn, params.guess, params.slip)
            for (course, skill), params in [
                *self.declared.items(),
                *((("*", skill), params) for skill, params in self.fitted.items()),
            ]
        )
        encoded = json.dumps(listing, separators=(",", ":")).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]


class KnowledgeStateProjection(Projection):
    """Bayesian Knowledge Tracing per student, course and skill."""

    name: ClassVar[str] = KNOWLEDGE_STATE
    version: ClassVar[int] = 1
    tables: ClassVar[tuple[str, ...]] = (KNOWLEDGE_STATE,)

    def __init__(self, parameters: SkillParameters) -> None:
        self.parameters = parameters

    def fingerprint(self) -> str:
        """Return the digest of the BKT parameters the rows are computed with."""
        return self.parameters.fingerprint()

    def apply(self, events: Sequence[LoggedEvent], rows: RowStore) -> None:
        """Move each answered skill's estimate by the answers of the batch."""
        answers = [
            logged.event
            for logged in events
            if isinstance(logged.event, AnswerSubmitted)
        ]
        if not answers:
            return

        keys = {(answer.student, answer.course, answer.skill) for answer in answers}
        states = rows.fetch(KNOWLEDGE_STATE, keys)
        for answer in answers:
            key = (answer.student, answer.course, answer.skill)
            states[key] = self.after_answer(states.get(key), key, answer)
        rows.upsert(KNOWLEDGE_STATE, [states[key] for key in sorted(keys)])

    def after_answer(self, state: Row | None, key: Key, answer: AnswerSubmitted) -> Row:
        """Return the row of a skill after one more answer."""
        params = self.parameters(answer.course, answer.skill)
        p_before = params.prior if state is None else float(state["p_mastery"])
        p_after = observe(p_before, answer.correct, params)
        student, course, skill = key
        attempts = 0 if state is None else int(state["attempts"])
        correct = 0 if state is None else int(state["correct"])
        return {
            "student": student,
            "course": course,
            "skill": skill,
            "p_mastery": p_after,
            "mastered": p_after >= MASTERY_THRESHOLD,
            "attempts": attempts + 1,
            "correct": correct + int(answer.correct),
            "prior": params.prior,
            "learn": params.learn,
            "guess": params.guess,
            "slip": params.slip,
            "updated_at": utc_time(answer.occurred_at),
            "last_seq": answer.seq,
        }
