"""The session state machine: a message in; a new session, a reply and events out.

`decide` is a pure function. It never raises for a message a student can send, so
every message gets a reply; a message id already seen changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from tutorlane.domain import phrases
from tutorlane.domain.answers import (
    choose_route,
    judge,
    names_a_choice,
    read_numbers,
)
from tutorlane.domain.course import (
    ChoiceAnswer,
    Course,
    Node,
    NumberAnswer,
    PhraseAnswer,
    Text,
)
from tutorlane.domain.events import (
    AnswerSubmitted,
    CourseCompleted,
    CourseResumed,
    CourseStarted,
    CourseStopped,
    Event,
    HintGiven,
    QuestionSkipped,
    SessionExpired,
    event_id_for,
    redact_answer,
)
from tutorlane.domain.messages import Inbound, Reply
from tutorlane.domain.phrases import Command

# Redeliveries are recognised two ways. The last RECENT_MESSAGES message ids are
# kept with their SwiftChat timestamps (a 6-byte fingerprint and 4 bytes of seconds
# each), which catches a retry that overtakes newer messages. An id that has left
# that window moves the session's horizon to its timestamp; a message not in the
# window and strictly older than the horizon is a redelivery too, however late it
# comes, and so is one of the ids that left the window at the horizon's very second
# (kept apart: a new message of that second is no redelivery). A genuinely new
# message that arrives behind more than RECENT_MESSAGES newer ones would be taken
# for a retry: SwiftChat does not reorder that far. A timestamp ahead of the
# server's clock is kept as the server's time, so that a wrong clock cannot move
# the horizon past messages yet to come (the retry of such a message, come back
# after RECENT_MESSAGES newer ones, would be taken for new).
RECENT_MESSAGES = 16
HORIZON_IDS = 16
DEFAULT_INACTIVITY_SECONDS = 30 * 60


class Status(StrEnum):
    """Where a student is in the course."""

    NEW = "new"
    ACTIVE = "active"
    STOPPED = "stopped"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class Session:
    """Everything the fast lane knows about one student between two messages."""

    version: int = 0
    seq: int = 0
    status: Status = Status.NEW
    language: str = "en"
    course: str = ""
    node: str = ""
    attempts: int = 0
    hints: int = 0
    asked_at: float = 0.0
    last_seen: float = 0.0
    answered: int = 0
    correct: int = 0
    plan: tuple[str, ...] = ()
    plan_for: str = ""
    detour: str = ""
    recent: tuple[bytes, ...] = ()
    horizon: int = 0
    horizon_ids: tuple[bytes, ...] = ()  # fingerprints that left at the horizon


@dataclass(frozen=True, slots=True)
class Decision:
    """What one message did: the new session, the reply and the events to record."""

    session: Session
    reply: Reply | None
    events: tuple[Event, ...]

    @property
    def is_duplicate(self) -> bool:
        """Tell whether the message had been handled before and changed nothing."""
        return self.reply is None


def message_digest(message_id: str) -> bytes:
    """Return the short fingerprint a session keeps of a message id."""
    return hashlib.blake2b(message_id.encode(), digest_size=6).digest()


def is_redelivery(session: Session, message: Inbound) -> bool:
    """Tell whether the session has seen this message before."""
    digest = message_digest(message.message_id)
    if any(entry[:6] == digest for entry in session.recent):
        return True
    return message.sent_at < session.horizon or digest in session.horizon_ids


def _remember(
    session: Session, message: Inbound, now: float
) -> tuple[tuple[bytes, ...], int, tuple[bytes, ...]]:
    """Return the session's window, horizon and horizon ids with `message` added."""
    seconds = min(max(message.sent_at, 0), int(now), 0xFFFFFFFF)
    entry = message_digest(message.message_id) + seconds.to_bytes(4, "big")
    recent = (*session.recent, entry)
    horizon, horizon_ids = session.horizon, session.horizon_ids
    for left in recent[:-RECENT_MESSAGES]:
        left_at = int.from_bytes(left[6:10], "big")
        if left_at > horizon:
            horizon, horizon_ids = left_at, (left[:6],)
        elif left_at == horizon:
            horizon_ids = (*horizon_ids, left[:6])[-HORIZON_IDS:]
    return recent[-RECENT_MESSAGES:], horizon, horizon_ids


def decide(
    session: Session,
    message: Inbound,
    course: Course,
    student: str,
    now: float,
    inactivity_seconds: float = DEFAULT_INACTIVITY_SECONDS,
) -> Decision:
    """Apply one inbound message of `student` to their session at time `now`."""
    if is_redelivery(session, message):
        return Decision(session, None, ())

    turn = _Turn(session, message, course, student, now)
    turn.expire_if_idle(inactivity_seconds)
    turn.respond()
    return turn.finish()


class _Turn:
    """The working state of one `decide` call: the session as it changes, and output."""

    def __init__(
        self,
        session: Session,
        message: Inbound,
        course: Course,
        student: str,
        now: float,
    ) -> None:
        self.session = session
        self.message = message
        self.course = course
        self.student = student
        self.now = now
        self.events: list[Event] = []
        self.lines: list[str] = []
        self.buttons: tuple[str, ...] = ()
        self.expired = False

    # Output ---------------------------------------------------------------------

    def say(self, text: Text, **values: object) -> None:
        self.lines.append(text.in_language(self.session.language).format(**values))

    def record(self, factory: Callable[..., Event], **fields: object) -> None:
        seq = self.session.seq + 1
        self.session = replace(self.session, seq=seq)
        self.events.append(
            factory(
                event_id=event_id_for(self.student, self.message.message_id, seq),
                student=self.student,
                seq=seq,
                message_id=self.message.message_id,
                occurred_at=self.now,
                course=self.course.id,
                **fields,
            )
        )

    def finish(self) -> Decision:
        recent, horizon, horizon_ids = _remember(self.session, self.message, self.now)
        session = replace(
            self.session,
            version=next_version(
                self.session.version, self.student, self.message.message_id, self.now
            ),
            last_seen=self.now,
            recent=recent,
            horizon=horizon,
            horizon_ids=horizon_ids,
        )
        reply = Reply("\n\n".join(self.lines), self.buttons)
        return Decision(session, reply, tuple(self.events))

    # Flow -----------------------------------------------------------------------

    @property
    def node(self) -> Node | None:
        session = self.session
        if session.status is not Status.ACTIVE or session.course != self.course.id:
            return None
        return self.course.nodes.get(session.node)

    def expire_if_idle(self, inactivity_seconds: float) -> None:
        node = self.node
        idle = self.now - self.session.last_seen
        if node is None or idle <= inactivity_seconds:
            return
        self.record(SessionExpired, node=node.id, idle_seconds=round(idle, 3))
        self.session = replace(self.session, attempts=0, hints=0)
        self.expired = True

    def respond(self) -> None:
        text = self.message.text if self.message.is_readable else ""
        command = phrases.read_command(text) if text else None
        if self.expired and command is None:
            # NOTE: after a long pause the student has likely forgotten the question,
            # so their message is not judged; they see the question again.
            self.say(phrases.WELCOME_BACK)
            self.ask_current()
        elif command is not None:
            self.run(command, text)
        elif not self.message.is_readable:
            self.say(phrases.CANNOT_READ)
            self.ask_current_or_invite()
        elif self.node is None:
            self.say(phrases.NOT_STARTED)
        else:
            self.answer(self.node, text)

    def run(self, command: Command, text: str) -> None:
        node = self.node
        if command is Command.GREETING and phrases.looks_hindi(text):
            self.session = replace(self.session, language="hi")

        if command is Command.START:
            self.start()
        elif command is Command.GREETING:
            self.greet()
        elif command is Command.HELP:
            self.say(phrases.HELP)
            self.ask_current_or_invite()
        elif command in (Command.ENGLISH, Command.HINDI):
            language = "hi" if command is Command.HINDI else "en"
            self.session = replace(self.session, language=language)
            if node is None and self.session.status is Status.NEW:
                self.start()  # choosing a language is a fine way to begin
            else:
                self.say(phrases.LANGUAGE_SET)
                self.ask_current_or_invite()
        elif node is None:
            self.say(phrases.NOT_STARTED)
        elif command is Command.TOPICS:
            self.open_menu()
        elif command is Command.HINT:
            self.hint(node)
        elif command is Command.SKIP and node.is_menu:
            self.say(phrases.PICK_TOPIC)
            self.ask_current()
        elif command is Command.SKIP:
            self.record(QuestionSkipped, node=node.id, skill=node.skill)
            self.say(phrases.SKIPPED, answer=_show_answer(node, self.language))
            self.move_to(self.forward(node, node.next.exhausted))
        else:
            self.record(CourseStopped, node=node.id)
            self.session = replace(self.session, status=Status.STOPPED)
            self.say(phrases.STOPPED)

    def greet(self) -> None:
        """Resume a student who has a place in the course, else start it."""
        resumable = (
            self.session.status in (Status.ACTIVE, Status.STOPPED)
            and self.session.course == self.course.id
            and self.course.has_node(self.session.node)
        )
        if not resumable:
            self.start()
            return
        if self.session.status is Status.STOPPED:
            # Recorded, as the stop was: a session restored from the events must
            # find the student active again.
            self.record(CourseResumed, node=self.session.node)
        self.session = replace(self.session, status=Status.ACTIVE)
        self.say(phrases.WELCOME_BACK)
        self.ask_current()

    def start(self) -> None:
        first = self.course.start
        self.session = replace(
            self.session,
            status=Status.ACTIVE,
            course=self.course.id,
            answered=0,
            correct=0,
            plan=(),
            plan_for="",
        )
        self.record(CourseStarted, node=first, language=self.session.language)
        self.say(phrases.WELCOME, title=self.course.title.in_language(self.language))
        self.move_to(first)

    @property
    def language(self) -> str:
        return self.session.language

    def hint(self, node: Node) -> None:
        if self.session.hints >= len(node.hints):
            self.say(phrases.NO_MORE_HINTS)
            self.ask_current()
            return
        number = self.session.hints + 1
        self.record(HintGiven, node=node.id, skill=node.skill, hint_number=number)
        self.session = replace(self.session, hints=number)
        self.lines.append(node.hints[number - 1].in_language(self.language))
        self.ask_current()

    def open_menu(self) -> None:
        # NOTE: opening the menu or choosing from it records no event: nothing is
        # learnt or answered, and the next answer's event names its node.
        if self.course.menu is None:
            self.say(phrases.NO_TOPICS)
            self.ask_current()
            return
        self.move_to(self.course.menu)

    def choose(self, node: Node, text: str) -> None:
        target = choose_route(node.routes, text)
        if target is None:
            self.say(phrases.PICK_TOPIC)
            self.ask_current()
            return
        self.move_to(target)

    def answer(self, node: Node, text: str) -> None:
        if node.answer is None:
            self.choose(node, text)
            return
        if isinstance(node.answer, NumberAnswer) and not read_numbers(text):
            self.say(phrases.NEEDS_NUMBER)
            self.ask_current()
            return
        # NOTE: text naming none of the buttons ("foo") is no answer: judged, it
        # would count as wrong and towards the Analyst's wrong streak.
        if (
            isinstance(node.answer, ChoiceAnswer)
            and node.buttons
            and not names_a_choice(node.buttons, text)
        ):
            self.say(phrases.NEEDS_CHOICE)
            self.ask_current()
            return

        correct = judge(node.answer, text)
        attempt = self.session.attempts + 1
        self.record(
            AnswerSubmitted,
            node=node.id,
            skill=node.skill,
            answer=redact_answer(text),
            correct=correct,
            attempt=attempt,
            seconds_taken=round(max(0.0, self.now - self.session.asked_at), 3),
            hints_used=self.session.hints,
        )
        self.session = replace(
            self.session,
            answered=self.session.answered + 1,
            correct=self.session.correct + int(correct),
        )

        if correct:
            self.lines.append(node.right_feedback.in_language(self.language))
            self.move_to(self.forward(node, node.next.right))
        elif attempt < node.attempts:
            self.lines.append(node.wrong_feedback.in_language(self.language))
            # A detour to an easier question is taken once per node, so that a
            # student who keeps failing cannot loop between the two forever.
            if node.next.wrong is None or self.session.detour == node.id:
                self.session = replace(self.session, attempts=attempt)
                self.ask_current()
            else:
                self.session = replace(self.session, detour=node.id)
                self.move_to(node.next.wrong)
        else:
            self.lines.append(node.exhausted_feedback.in_language(self.language))
            self.say(phrases.ANSWER_WAS, answer=_show_answer(node, self.language))
            self.move_to(self.forward(node, node.next.exhausted))

    def forward(self, node: Node, default: str | None) -> str | None:
        """Pick the next node: the Navigator's plan when it is fresh, else the graph."""
        plan = self.session.plan
        if not self.course.navigator:
            return default
        if plan and self.session.plan_for == node.id and self.course.has_node(plan[0]):
            self.session = replace(self.session, plan=plan[1:], plan_for=plan[0])
            return plan[0]
        return default

    def move_to(self, node_id: str | None) -> None:
        if node_id is None:
            self.record(
                CourseCompleted,
                answered=self.session.answered,
                correct=self.session.correct,
            )
            if self.session.answered:
                self.say(
                    phrases.FINISHED,
                    correct=self.session.correct,
                    answered=self.session.answered,
                )
            else:
                self.say(phrases.FINISHED_UNANSWERED)
            self.session = replace(self.session, status=Status.FINISHED, node="")
            return
        self.session = replace(
            self.session, node=node_id, attempts=0, hints=0, asked_at=self.now
        )
        self.ask_current()

    def ask_current(self) -> None:
        node = self.node
        if node is None:
            return
        self.lines.append(node.question.in_language(self.language))
        self.buttons = node.buttons

    def ask_current_or_invite(self) -> None:
        if self.node is None:
            self.say(phrases.NOT_STARTED)
        else:
            self.ask_current()


def _show_answer(node: Node, language: str) -> str:
    answer = node.answer
    if answer is None:
        return ""  # a menu has no answer; no path shows one
    if isinstance(answer, NumberAnswer):
        return _indian_number(answer.value)
    if isinstance(answer, PhraseAnswer):
        # Show the answer in the student's language when the course has it.
        in_hindi = [p for p in answer.phrases if phrases.looks_hindi(p)]
        in_latin = [p for p in answer.phrases if not phrases.looks_hindi(p)]
        preferred = in_hindi if language == "hi" else in_latin
        return (preferred or list(answer.phrases))[0]
    assert isinstance(answer, ChoiceAnswer)
    return answer.choice


def _indian_number(value: Decimal) -> str:
    """Write a number as Indian schoolbooks do: 3,407 and 1,25,000."""
    text = format(value.normalize(), "f")
    sign, text = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, dot, fraction = text.partition(".")
    if len(whole) > 3:
        head, tail = whole[:-3], whole[-3:]
        pairs = [head[max(0, end - 2) : end] for end in range(len(head), 0, -2)]
        whole = ",".join(reversed(pairs)) + "," + tail
    return f"{sign}{whole}{dot}{fraction}"


# A session's first version is drawn from this range: 31 bits, so that it and the
# versions after it take 5 bytes in the stored session, not 9.
FIRST_VERSIONS = 2**31


def next_version(version: int, student: str, message_id: str, now: float) -> int:
    """Return the version a session takes when a change of it is committed.

    One more than the version read; but a session written for the first time, or
    again after Redis lost it (read as version 0), starts at a number drawn from
    the student, the message and the time. Every conditional write compares
    versions, so a version must not name two contents: counted again from 1, a
    restored session would soon reach a version its earlier life had, and a write
    checked against that one (a Navigator's plan, a commit in flight) would land
    on the new content. Drawn at random (deterministically, for a pure domain), a
    new life overlaps the hundreds of versions of the old one with a chance of
    about one in ten million, whatever the hosts' clocks say.
    """
    if version:
        return version + 1
    seed = f"{student}\x1f{message_id}\x1f{now!r}".encode()
    drawn = int.from_bytes(hashlib.blake2b(seed, digest_size=4).digest(), "big")
    return 1 + drawn % (FIRST_VERSIONS - 1)


def restore_session(history: Sequence[Event], course: Course) -> Session:
    """Rebuild a lost session from the student's recorded events, in seq order.

    The place in the course, attempts, hints, counts and language follow the events;
    where the student went after the last one follows the course graph (a
    Navigator's plan is not recorded, and the next message gets a fresh one).
    Redelivery marks are lost with the session: SwiftChat's retries of messages
    answered before the loss are judged again, on the restored place.
    """
    restored = _Restoration(course)
    for event in history:
        restored.apply(event)
    return restored.session


class _Restoration:
    """A session put back together one recorded event at a time."""

    def __init__(self, course: Course) -> None:
        self.course = course
        self.session = Session()

    def apply(self, event: Event) -> None:
        last_seen = max(self.session.last_seen, event.occurred_at)
        self.session = replace(self.session, seq=event.seq, last_seen=last_seen)
        if isinstance(event, CourseStarted):
            self.session = replace(
                self.session,
                status=Status.ACTIVE,
                course=event.course,
                language=event.language,
                answered=0,
                correct=0,
            )
            self.arrive(event.node, event.occurred_at)
            return
        if event.course != self.session.course:
            return  # an event of a course the student has since left
        if isinstance(event, CourseCompleted):
            self.session = replace(self.session, status=Status.FINISHED, node="")
        elif isinstance(event, CourseStopped):
            self.session = replace(self.session, status=Status.STOPPED)
        elif isinstance(event, CourseResumed):
            self.at(event.node, event.occurred_at)
        elif isinstance(event, SessionExpired):
            self.session = replace(self.session, attempts=0, hints=0)
        elif isinstance(event, HintGiven):
            self.at(event.node, event.occurred_at)
            self.session = replace(self.session, hints=event.hint_number)
        elif isinstance(event, QuestionSkipped):
            self.at(event.node, event.occurred_at)
            self.leave(event.node, "exhausted", event.occurred_at)
        elif isinstance(event, AnswerSubmitted):
            self.answered(event)

    def answered(self, event: AnswerSubmitted) -> None:
        self.at(event.node, event.occurred_at)
        self.session = replace(
            self.session,
            answered=self.session.answered + 1,
            correct=self.session.correct + int(event.correct),
        )
        node = self.course.nodes.get(event.node)
        if event.correct:
            self.leave(event.node, "right", event.occurred_at)
        elif node is None or event.attempt >= node.attempts:
            self.leave(event.node, "exhausted", event.occurred_at)
        elif node.next.wrong is not None and self.session.detour != node.id:
            self.session = replace(self.session, detour=node.id)
            self.arrive(node.next.wrong, event.occurred_at)
        else:
            self.session = replace(self.session, attempts=event.attempt)

    def at(self, node_id: str, when: float) -> None:
        """Place the student at the node an event happened at, working on it."""
        # NOTE: logs from before CourseResumed show a resume only by work on a node.
        self.session = replace(self.session, status=Status.ACTIVE)
        if self.session.node != node_id:
            self.arrive(node_id, when)

    def leave(self, node_id: str, outcome: str, when: float) -> None:
        """Move on from a node as the course graph says for this outcome."""
        node = self.course.nodes.get(node_id)
        following = getattr(node.next, outcome) if node is not None else None
        if following is None:
            # The course ends here; its CourseCompleted event follows in the log.
            self.session = replace(self.session, node="")
        else:
            self.arrive(following, when)

    def arrive(self, node_id: str, when: float) -> None:
        self.session = replace(
            self.session, node=node_id, attempts=0, hints=0, asked_at=when
        )
