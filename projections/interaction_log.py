"""The interaction log: one row per answer, as analysts read a gradebook."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from tutorlane.domain.events import AnswerSubmitted
from tutorlane.projections.base import (
    LoggedEvent,
    Projection,
    Row,
    RowStore,
    utc_time,
)

INTERACTION_LOG = "interaction_log"


class InteractionLogProjection(Projection):
    """Every answer submitted, keyed by student and sequence number."""

    name: ClassVar[str] = INTERACTION_LOG
    version: ClassVar[int] = 1
    tables: ClassVar[tuple[str, ...]] = (INTERACTION_LOG,)

    def apply(self, events: Sequence[LoggedEvent], rows: RowStore) -> None:
        """Add a row for each answer in the batch."""
        answers = [
            answer_row(logged.notification_id, logged.event)
            for logged in events
            if isinstance(logged.event, AnswerSubmitted)
        ]
        if answers:
            rows.insert(INTERACTION_LOG, answers)


def answer_row(notification_id: int, answer: AnswerSubmitted) -> Row:
    """Return the interaction-log row of one answer."""
    return {
        "student": answer.student,
        "seq": answer.seq,
        "notification_id": notification_id,
        "course": answer.course,
        "node": answer.node,
        "skill": answer.skill,
        "answer": answer.answer,
        "correct": answer.correct,
        "attempt": answer.attempt,
        "seconds_taken": answer.seconds_taken,
        "hints_used": answer.hints_used,
        "answered_at": utc_time(answer.occurred_at),
    }
