"""Event histories for tests of the read side: made up, and recorded in a store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tutorlane.adapters.codecs import event_to_json, event_topic
from tutorlane.adapters.event_store import EventStore
from tutorlane.commands.ports import NewRecord
from tutorlane.domain.events import (
    AnalysisRecorded,
    AnswerSubmitted,
    Event,
    HintGiven,
    event_id_for,
)

COURSE = "maths-primary"
START = 1_780_000_000.0


def _common(student: str, seq: int, course: str) -> dict[str, Any]:
    """Return the fields every event has, for the `seq`-th event of a student."""
    return {
        "event_id": event_id_for(student, f"m{seq}", seq),
        "student": student,
        "seq": seq,
        "message_id": f"m{seq}",
        "occurred_at": START + seq * 7.25,
        "course": course,
    }


def answer(
    student: str,
    seq: int,
    *,
    correct: bool,
    skill: str = "place-value",
    node: str = "pv-1",
    attempt: int = 1,
    course: str = COURSE,
) -> AnswerSubmitted:
    """Return the `seq`-th event of a student: an answer."""
    return AnswerSubmitted(
        **_common(student, seq, course),
        node=node,
        skill=skill,
        answer="42" if correct else "41",
        correct=correct,
        attempt=attempt,
        seconds_taken=3.5,
    )


def hint(student: str, seq: int, *, skill: str = "place-value") -> HintGiven:
    """Return the `seq`-th event of a student: a hint."""
    return HintGiven(
        **_common(student, seq, COURSE),
        node="pv-1",
        skill=skill,
        hint_number=1,
    )


def analysis(student: str, skill: str, salt: int) -> AnalysisRecorded:
    """Return an analysis of one of a student's skills, as the Analyst records it."""
    fields = _common(student, 1, COURSE)
    return AnalysisRecorded(
        **{**fields, "event_id": f"{student}-{skill}-{salt}-{START}"},
        skill=skill,
        trigger="wrong-streak",
        misconception="counts places from the left",
        evidence="wrote 3 for the tens of 3,706",
        remediation_node="pv-1",
        model="test-model",
    )


def record(store: EventStore, events: Sequence[Event]) -> None:
    """Append events to the store in one transaction, as the worker does."""
    store.append(
        [
            NewRecord(
                event.student, event.seq, event_topic(event), event_to_json(event)
            )
            for event in events
        ]
    )


class Students:
    """Hands out each student's next sequence number."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    def next_seq(self, student: str) -> int:
        """Return the student's next sequence number."""
        self.last[student] = self.last.get(student, 0) + 1
        return self.last[student]
