"""Plan a student's next steps; write them into the session, never over a newer one.

The Navigator runs in the slow lane after a student's knowledge state changed. It
reads the session to learn where the student is now and the session's version, plans
from there, and writes the plan back only if the version is unchanged (one Lua step
per session). A batch of students costs one round trip to read and one to write.
The fast lane never waits for it: with no plan, or a plan for another node, it
follows the course graph.

How the Navigator knows which session its knowledge belongs to: every event carries
`seq`, the student's event number, and the session keeps `seq` of the last event it
produced. The session's `version` is another counter: it moves on with every commit
(also those that record no event, such as `help`) and with every plan written, so
events cannot tell it. Hence the plan is computed for the version just read, and only
when the knowledge includes every event the session has produced (`session.seq ==
knowledge_seq`); otherwise a newer event is on its way and will plan again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from tutorlane.commands.ports import PlanWriter, SessionPlan
from tutorlane.domain.knowledge import SkillKnowledge
from tutorlane.domain.navigator import Navigator
from tutorlane.domain.session import Session, Status

logger = logging.getLogger(__name__)


class PlanOutcome(StrEnum):
    """What became of one planning."""

    WRITTEN = "written"
    UNCHANGED = "unchanged"  # the session already holds this plan for this node
    STALE = "stale"  # the session changed between read and write: plan dropped
    BEHIND = "behind"  # the knowledge lacks some of the session's events
    NOT_IN_COURSE = "not-in-course"  # not active in the Navigator's course
    UNREADABLE = "unreadable"  # the session cannot be read: left alone


@dataclass(frozen=True, slots=True)
class PlannedSteps:
    """The plan made for one student, the session it was made for, and its fate."""

    outcome: PlanOutcome
    plan: tuple[str, ...] = ()
    node: str = ""
    version: int = 0


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """What the Navigator knows of one student, to plan from.

    `knowledge_seq` is the `seq` of the student's latest event that the knowledge
    includes; the other fields are `Navigator.plan`'s arguments.
    """

    student: str
    knowledge: Mapping[str, SkillKnowledge]
    last_seen: Mapping[str, float]
    recent: Sequence[str]
    knowledge_seq: int
    now: float


class PlanNextSteps:
    """The Navigator's use case: plan from the knowledge state, write back if fresh."""

    def __init__(self, sessions: PlanWriter, navigator: Navigator) -> None:
        self.sessions = sessions
        self.navigator = navigator

    async def plan(
        self,
        student: str,
        knowledge: Mapping[str, SkillKnowledge],
        last_seen: Mapping[str, float],
        recent: Sequence[str],
        knowledge_seq: int,
        now: float,
    ) -> PlannedSteps:
        """Plan one student's next nodes and set them on their session if unchanged."""
        request = PlanRequest(student, knowledge, last_seen, recent, knowledge_seq, now)
        (planned,) = await self.plan_many([request])
        return planned

    async def plan_many(self, requests: Sequence[PlanRequest]) -> list[PlannedSteps]:
        """Plan each student's next nodes; set them on the sessions still unchanged.

        One read of all the sessions and one write of the new plans, whatever the
        number of students; answers in the order of `requests`.
        """
        sessions = await self.sessions.load_many([ask.student for ask in requests])
        decided = [
            self.decide(ask, session)
            for ask, session in zip(requests, sessions, strict=True)
        ]

        # Only new plans are written, each checked against the version it was
        # made for.
        to_write = [
            (index, SessionPlan(ask.student, session, planned.plan))
            for index, (ask, session, planned) in enumerate(
                zip(requests, sessions, decided, strict=True)
            )
            if session is not None and planned.outcome is PlanOutcome.WRITTEN
        ]
        written = await self.sessions.write_plans([plan for _, plan in to_write])
        for (index, plan), fresh in zip(to_write, written, strict=True):
            if not fresh:
                logger.info(
                    "plan for student=%s at version %d dropped: the session moved on "
                    "(or could not be written)",
                    plan.student,
                    plan.computed_for.version,
                )
                decided[index] = replace(decided[index], outcome=PlanOutcome.STALE)
        return decided

    def decide(self, ask: PlanRequest, session: Session | None) -> PlannedSteps:
        """Return the plan for a session, WRITTEN where it is new and due to write."""
        if session is None:
            return PlannedSteps(PlanOutcome.UNREADABLE)
        course = self.navigator.course
        if (
            session.status is not Status.ACTIVE
            or session.course != course.id
            or not course.has_node(session.node)
        ):
            return PlannedSteps(PlanOutcome.NOT_IN_COURSE, version=session.version)
        if session.seq != ask.knowledge_seq:
            logger.debug(
                "knowledge of student=%s at seq %d, session at %d: not planning",
                ask.student,
                ask.knowledge_seq,
                session.seq,
            )
            return PlannedSteps(
                PlanOutcome.BEHIND, node=session.node, version=session.version
            )

        plan = self.navigator.plan(
            ask.knowledge, ask.last_seen, session.node, ask.recent, ask.now
        )
        if session.plan == plan and session.plan_for == session.node:
            # Writing would only move the version on and make a fast-lane commit
            # in flight redo its message for nothing.
            return PlannedSteps(
                PlanOutcome.UNCHANGED, plan, session.node, session.version
            )
        return PlannedSteps(PlanOutcome.WRITTEN, plan, session.node, session.version)
