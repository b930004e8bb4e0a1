"""Ask the Analyst about a student on a trigger, within budget; record what it found.

The caller (the slow lane, reacting to new events; never a projection rebuild) finds
a trigger with `domain.analysis.find_trigger`, calls `AnalyseStudent.analyse`, and
appends the `AnalysisRecorded` event it returns to the event store, from where the
`analyst_insights` projection reads it. Replaying the log never asks the model again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tutorlane.commands.ports import Analyst, AnalystUnavailable
from tutorlane.domain.analysis import (
    AnalystBudget,
    RejectedAnalysis,
    Trigger,
    build_request,
    parse_insight,
    record_analysis,
)
from tutorlane.domain.course import Course
from tutorlane.domain.events import AnalysisRecorded, AnswerSubmitted
from tutorlane.domain.knowledge import SkillKnowledge

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Analysed:
    """The event to record, or why there is none (`skipped`)."""

    event: AnalysisRecorded | None
    skipped: str = ""


class AnalyseStudent:
    """The Analyst's use case: budget, ask, check, and make the event."""

    def __init__(
        self,
        analyst: Analyst,
        course: Course,
        budget: AnalystBudget | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.analyst = analyst
        self.course = course
        self.budget = budget or AnalystBudget()
        self.clock = clock
        self._unknown_courses: set[str] = set()

    async def analyse(
        self,
        trigger: Trigger,
        answers: Sequence[AnswerSubmitted],
        knowledge: Mapping[str, SkillKnowledge],
    ) -> Analysed:
        """Analyse one trigger of one student; return the event to record, if any.

        `answers` are the student's recent answers, oldest first (those on the
        trigger's skill are shown to the model); `knowledge` is their state.
        """
        student = trigger.event.student
        course = trigger.event.course
        if course != self.course.id:
            if course not in self._unknown_courses:
                self._unknown_courses.add(course)
                logger.warning(
                    "events of course %r are not analysed: this process has "
                    "course %r; run it with the TUTORLANE_FLOWS of the fast lane",
                    course,
                    self.course.id,
                )
            return Analysed(None, f"course {course!r} is not the Analyst's")
        now = self.clock()
        refusal = self.budget.refusal(student, now)
        if refusal is not None:
            logger.debug("analysis of student=%s skipped: %s", student, refusal)
            return Analysed(None, refusal)
        # NOTE: counted before the call, so that a failing API is not asked again
        # for the same student at every trigger.
        self.budget.record(student, now)

        request = build_request(trigger, self.course, answers, knowledge)
        try:
            text = await self.analyst.analyse(request)
        except AnalystUnavailable as ex:
            logger.warning("analysis of student=%s not made: %s", student, ex)
            return Analysed(None, f"analyst unavailable: {ex}")
        try:
            insight = parse_insight(text, request.allowed_nodes)
        except RejectedAnalysis as ex:
            # The text itself is not logged: it may quote a student's answers.
            logger.warning("analysis of student=%s rejected: %s", student, ex)
            return Analysed(None, f"rejected: {ex}")

        event = record_analysis(trigger, insight, self.analyst.model, self.clock())
        logger.info(
            "analysis of student=%s on %s recorded (%s)",
            student,
            trigger.skill,
            self.analyst.model,
        )
        return Analysed(event)
