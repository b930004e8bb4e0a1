"""Answers read back from the event store, in notification order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from tutorlane.adapters.codecs import event_from_json
from tutorlane.adapters.event_store import EventStore, RecordedEvent
from tutorlane.commands.fit_knowledge import ObservedAnswer
from tutorlane.domain.events import AnswerSubmitted

PAGE = 5000
ANSWER_TYPE = AnswerSubmitted.TYPE


def _is_answer(event: RecordedEvent) -> bool:
    return event.topic.partition("/")[0] == ANSWER_TYPE


def read_answers(
    store: EventStore, course: str | None = None, after: int = 0
) -> Iterator[ObservedAnswer]:
    """Yield every recorded answer (of `course`, when given) in notification order."""
    while True:
        page = store.read(after, PAGE)
        if not page:
            return
        for recorded in page:
            if not _is_answer(recorded):
                continue
            event = event_from_json(recorded.state)
            assert isinstance(event, AnswerSubmitted)
            if course is None or event.course == course:
                yield ObservedAnswer(
                    event.student, event.skill, event.seq, event.correct
                )
        after = page[-1].notification_id


@dataclass
class AnswerTally:
    """Follows the event store's log from a position, counting what it reads."""

    store: EventStore
    course: str
    position: int = 0
    events: int = 0
    answers: int = 0
    answers_by_student: dict[str, int] = field(default_factory=dict)

    def catch_up(self) -> int:
        """Read what was recorded since the last call; return the answers counted."""
        before = self.answers
        while page := self.store.read(self.position, PAGE):
            for recorded in page:
                self.events += 1
                if not _is_answer(recorded):
                    continue
                event = event_from_json(recorded.state)
                if isinstance(event, AnswerSubmitted) and event.course == self.course:
                    self.answers += 1
                    count = self.answers_by_student.get(event.student, 0)
                    self.answers_by_student[event.student] = count + 1
            self.position = page[-1].notification_id
        return self.answers - before
