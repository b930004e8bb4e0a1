"""Domain events: immutable, versioned facts about what a student did.

Every event names the student by pseudonym only, carries the per-student sequence
number `seq` (1, 2, 3, ... with no gaps) and a deterministic `event_id` derived from
the inbound message id, so that a redelivered message can never make a second record.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

# NOTE: fixed forever; changing it would give old messages new event ids.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c4f9e-3b7a-5d2e-9c41-2a8f0e6b7d13")
MAX_ANSWER_TEXT = 256

# Ten or more digits in a run look like a phone number, whatever separates them
# (anything but a letter: spaces, punctuation, symbols, emoji, invisible marks; so
# keycap emoji digits too, and typed fractions such as ½) and in any script's
# digits; a letter O counts as a zero between digits, or after the last one when no
# letter follows it. Students do type their number into a chat. A list of ten small
# numbers is removed too; it was never a right answer.
_SEPARATORS = r"[\W_\u00bc-\u00be\u2150-\u215f]*"
_DIGIT = r"(?:\d|[oO](?=[\W_]*[\doO])|(?<=\d)[oO](?![^\W\d_]))"
_PHONE_LIKE = re.compile(
    rf"(?:[+(][\W_]*)?\d(?:{_SEPARATORS}{_DIGIT}){{9,}}(?:\ufe0f?\u20e3)?"
)


def event_id_for(student: str, message_id: str, seq: int) -> str:
    """Return the deterministic id of the `seq`-th event of a student."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{student}\x1f{message_id}\x1f{seq}"))


def redact_answer(text: str) -> str:
    """Return answer text safe to keep: bounded, with phone-like runs removed."""
    return _PHONE_LIKE.sub("[number removed]", text.strip())[:MAX_ANSWER_TEXT]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every event carries."""

    TYPE: ClassVar[str] = "Event"
    VERSION: ClassVar[int] = 1

    event_id: str
    student: str
    seq: int
    message_id: str
    occurred_at: float
    course: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CourseStarted(Event):
    """A student started (or restarted) a course at its first node."""

    TYPE: ClassVar[str] = "CourseStarted"
    node: str
    language: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerSubmitted(Event):
    """A student answered a question, right or wrong.

    Version 2 added `hints_used`; version 1 records read back with 0 hints.
    """

    TYPE: ClassVar[str] = "AnswerSubmitted"
    VERSION: ClassVar[int] = 2
    node: str
    skill: str
    answer: str
    correct: bool
    attempt: int
    seconds_taken: float
    hints_used: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class HintGiven(Event):
    """A student asked for a hint and got the `hint_number`-th one."""

    TYPE: ClassVar[str] = "HintGiven"
    node: str
    skill: str
    hint_number: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QuestionSkipped(Event):
    """A student skipped a question without answering it."""

    TYPE: ClassVar[str] = "QuestionSkipped"
    node: str
    skill: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CourseCompleted(Event):
    """A student reached the end of a course."""

    TYPE: ClassVar[str] = "CourseCompleted"
    answered: int
    correct: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CourseStopped(Event):
    """A student asked to stop; the session keeps their place."""

    TYPE: ClassVar[str] = "CourseStopped"
    node: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CourseResumed(Event):
    """A student who had stopped came back to their place."""

    TYPE: ClassVar[str] = "CourseResumed"
    node: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionExpired(Event):
    """A student came back after the inactivity limit; their attempt was reset."""

    TYPE: ClassVar[str] = "SessionExpired"
    node: str
    idle_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalysisRecorded(Event):
    """The Analyst said what a student gets wrong on a skill, and where to practise.

    An analysis reacts to one of the student's events (the trigger): `event_id` is
    derived from the trigger's id (`analysis_event_id`), and `seq`, `message_id`
    are the trigger's. It is not one of the student's own numbered events: record it
    in a stream of its own, never under the student's `seq`, which the fast lane
    goes on numbering. `occurred_at` is when the analysis was made; `model` names
    what made it (a model id, or the rule-based stand-in).
    """

    TYPE: ClassVar[str] = "AnalysisRecorded"
    skill: str
    trigger: str
    misconception: str
    evidence: str
    remediation_node: str
    model: str


def analysis_event_id(trigger_event_id: str) -> str:
    """Return the id of the analysis of one triggering event: one at most per event."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"analysis\x1f{trigger_event_id}"))


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        CourseStarted,
        AnswerSubmitted,
        HintGiven,
        QuestionSkipped,
        CourseCompleted,
        CourseStopped,
        CourseResumed,
        SessionExpired,
        AnalysisRecorded,
    )
}


class UnknownEvent(ValueError):
    """A recorded event names a type or version this code does not know."""


def _answer_submitted_v1_to_v2(fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, "hints_used": 0}


# (type, version) -> the function that lifts a record of that version by one.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("AnswerSubmitted", 1): _answer_submitted_v1_to_v2,
}


def upcast(type_name: str, version: int, fields: dict[str, Any]) -> dict[str, Any]:
    """Lift the fields of a recorded event to the current version of its type."""
    event_type = EVENT_TYPES.get(type_name)
    if event_type is None:
        raise UnknownEvent(f"unknown event type {type_name!r}")
    if version < 1 or version > event_type.VERSION:
        raise UnknownEvent(
            f"{type_name} version {version} is not between 1 and this code's "
            f"{event_type.VERSION}; upgrade tutorlane before reading a newer one"
        )
    while version < event_type.VERSION:
        fields = UPCASTERS[(type_name, version)](fields)
        version += 1
    return fields
