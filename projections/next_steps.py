"""Next steps: each student's Navigator plan as of their last event.

The row keeps what the plan is computed from (knowledge per skill, when each skill
was last answered, the nodes seen lately), so that the projection stays a pure
function of the log: a plan depends on the events and the course files only.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from tutorlane.domain.course import Course
from tutorlane.domain.events import (
    AnalysisRecorded,
    AnswerSubmitted,
    CourseStarted,
    Event,
    QuestionSkipped,
)
from tutorlane.domain.knowledge import SkillKnowledge
from tutorlane.domain.navigator import Navigator, NavigatorPolicy
from tutorlane.projections.base import (
    LoggedEvent,
    Projection,
    Row,
    RowStore,
    utc_time,
)
from tutorlane.projections.knowledge_state import SkillParameters

NEXT_STEPS = "next_steps"
RECENT_NODES = 5

logger = logging.getLogger(__name__)


@dataclass
class StudentProgress:
    """What the Navigator needs of one student, as their events tell it."""

    student: str
    course: str = ""
    node: str = ""
    last_seq: int = 0
    last_at: float = 0.0
    knowledge: dict[str, SkillKnowledge] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)
    recent: list[str] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: Row) -> StudentProgress:
        """Read a student's progress back from their row."""
        skills = json.loads(row["knowledge"])
        return cls(
            student=row["student"],
            course=row["course"],
            node=row["after_node"],
            last_seq=int(row["last_seq"]),
            last_at=float(row["last_at"]),
            knowledge={
                skill: SkillKnowledge(skill, p, attempts, correct)
                for skill, (p, attempts, correct, _seen) in skills.items()
            },
            last_seen={skill: seen for skill, (*_, seen) in skills.items()},
            recent=list(json.loads(row["recent"])),
        )

    def observe(self, event: Event, parameters: SkillParameters) -> None:
        """Take one more event of the student into account."""
        self.last_seq = event.seq
        self.last_at = event.occurred_at
        if isinstance(event, CourseStarted):
            self.course, self.node = event.course, event.node
        elif isinstance(event, AnswerSubmitted):
            params = parameters(event.course, event.skill)
            state = self.knowledge.get(event.skill) or SkillKnowledge.new(
                event.skill, params
            )
            self.knowledge[event.skill] = state.after(event.correct, params)
            self.last_seen[event.skill] = event.occurred_at
            self.saw(event.course, event.node)
        elif isinstance(event, QuestionSkipped):
            self.saw(event.course, event.node)

    def saw(self, course: str, node: str) -> None:
        """Remember a node the student worked on."""
        self.course, self.node = course, node
        if node in self.recent:
            self.recent.remove(node)
        self.recent = [*self.recent, node][-RECENT_NODES:]

    def row(self, plan: Sequence[str]) -> Row:
        """Return the student's row, with the plan made from it."""
        skills = {
            skill: [state.p_mastery, state.attempts, state.correct, seen]
            for skill, state in sorted(self.knowledge.items())
            for seen in [self.last_seen.get(skill, 0.0)]
        }
        return {
            "student": self.student,
            "course": self.course,
            "after_node": self.node,
            "plan": ",".join(plan),
            "last_seq": self.last_seq,
            "last_at": self.last_at,
            "planned_at": planned_at(self.last_at),
            "knowledge": json.dumps(skills, separators=(",", ":")),
            "recent": json.dumps(self.recent, separators=(",", ":")),
        }


def planned_at(timestamp: float) -> datetime:
    """Return when a plan was made: the time of the event it follows."""
    return utc_time(timestamp)


class NextStepsProjection(Projection):
    """The Navigator's plan for each student, after each of their events."""

    name: ClassVar[str] = NEXT_STEPS
    version: ClassVar[int] = 1
    tables: ClassVar[tuple[str, ...]] = (NEXT_STEPS,)

    def __init__(
        self,
        courses: Mapping[str, Course],
        parameters: SkillParameters,
        policy: NavigatorPolicy | None = None,
    ) -> None:
        self.parameters = parameters
        self.policy = policy or NavigatorPolicy()
        self.navigators = {
            course_id: Navigator(course, self.policy)
            for course_id, course in courses.items()
        }
        # The progress of the students of the last batch applied, by student: what
        # the agents act on once the runner has committed that batch.
        self.last_applied: dict[str, StudentProgress] = {}
        self._unknown_courses: set[str] = set()

    def fingerprint(self) -> str:
        """Return what besides the events decides the rows: parameters and policy."""
        policy = hashlib.sha256(repr(self.policy).encode()).hexdigest()[:8]
        return f"{self.parameters.fingerprint()}:{policy}"

    def apply(self, events: Sequence[LoggedEvent], rows: RowStore) -> None:
        """Follow each student's events and plan once after their last one."""
        # NOTE: an analysis is numbered in a stream of its own, not the student's.
        student_events = [
            logged.event
            for logged in events
            if not isinstance(logged.event, AnalysisRecorded)
        ]
        self.last_applied = {}
        if not student_events:
            return

        keys = {(event.student,) for event in student_events}
        found = rows.fetch(NEXT_STEPS, keys)
        progress = {key[0]: StudentProgress.from_row(row) for key, row in found.items()}
        for event in student_events:
            student = progress.setdefault(event.student, StudentProgress(event.student))
            student.observe(event, self.parameters)
        rows.upsert(
            NEXT_STEPS,
            [progress[key[0]].row(self.plan(progress[key[0]])) for key in sorted(keys)],
        )
        self.last_applied = {key[0]: progress[key[0]] for key in sorted(keys)}

    def plan(self, student: StudentProgress) -> tuple[str, ...]:
        """Return the Navigator's plan after the student's last event."""
        navigator = self.navigators.get(student.course)
        if navigator is None:
            if student.course not in self._unknown_courses:
                self._unknown_courses.add(student.course)
                logger.warning(
                    "no plans for students of course %r: it is not among this "
                    "process's courses %s (TUTORLANE_FLOWS)",
                    student.course,
                    sorted(self.navigators),
                )
            return ()
        if student.node not in navigator.course.nodes:
            return ()
        return navigator.plan(
            student.knowledge,
            student.last_seen,
            student.node,
            student.recent,
            student.last_at,
        )
