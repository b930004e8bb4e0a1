"""The session state machine: what each message does to a student's session."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutorlane.domain.course import Course, CourseError, parse_course
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
)
from tutorlane.domain.messages import Inbound, Kind
from tutorlane.domain.session import (
    FIRST_VERSIONS,
    HORIZON_IDS,
    RECENT_MESSAGES,
    Decision,
    Session,
    Status,
    decide,
    next_version,
    restore_session,
)
from tutorlane.tests.courses import TINY_COURSE

STUDENT = "student-pseudonym"
T0 = 1_700_000_000.0


class Conversation:
    """Feeds messages to `decide` one after another, like the fast lane does."""

    def __init__(self, course: Course, session: Session | None = None) -> None:
        self.course = course
        self.session = session or Session()
        self.now = T0
        self.count = 0
        self.sent: list[Inbound] = []

    def send(
        self, text: str = "", kind: Kind = Kind.TEXT, after: float = 5.0
    ) -> Decision:
        self.count += 1
        self.now += after
        message = Inbound(f"m-{self.count}", kind, text, sent_at=int(self.now))
        self.sent.append(message)
        decision = decide(self.session, message, self.course, STUDENT, self.now)
        self.session = decision.session
        return decision


def started(course: Course) -> Conversation:
    conversation = Conversation(course)
    conversation.send("hi")
    return conversation


def test_a_greeting_starts_the_course_at_its_first_question(course: Course) -> None:
    decision = Conversation(course).send("hi")

    assert decision.session.status is Status.ACTIVE
    assert decision.session.node == "add-1"
    assert decision.reply is not None
    assert "What is 7 + 8?" in decision.reply.text
    assert [type(e) for e in decision.events] == [CourseStarted]


def test_a_hindi_greeting_switches_the_tutor_to_hindi(course: Course) -> None:
    decision = Conversation(course).send("नमस्ते")

    assert decision.session.language == "hi"
    assert decision.reply is not None
    assert "7 + 8 कितना है?" in decision.reply.text


def test_a_right_answer_gives_feedback_and_the_next_question(course: Course) -> None:
    chat = started(course)
    decision = chat.send("Answer is 15")

    assert decision.session.node == "add-2"
    assert decision.reply is not None
    assert decision.reply.text.startswith("Correct! 15.")
    assert "Pick 2 + 2" in decision.reply.text
    assert decision.reply.buttons == ("3", "4", "5")
    (event,) = decision.events
    assert isinstance(event, AnswerSubmitted)
    assert (event.node, event.skill, event.correct, event.attempt) == (
        "add-1",
        "addition",
        True,
        1,
    )
    assert event.seconds_taken == 5.0


def test_a_wrong_answer_with_attempts_left_asks_again(course: Course) -> None:
    chat = started(course)
    decision = chat.send("14")

    assert decision.session.node == "add-1"
    assert decision.session.attempts == 1
    assert decision.reply is not None
    assert "Not quite." in decision.reply.text
    assert "What is 7 + 8?" in decision.reply.text
    assert isinstance(decision.events[0], AnswerSubmitted)
    assert decision.events[0].correct is False


def test_the_last_wrong_attempt_shows_the_answer_and_moves_on(course: Course) -> None:
    chat = started(course)
    chat.send("14")
    decision = chat.send("16")

    assert decision.session.node == "add-2"
    assert decision.reply is not None
    assert "The answer is 15." in decision.reply.text
    assert decision.events[0].attempt == 2  # type: ignore[attr-defined]
    # The wrong answer's feedback asks for another try, which is not coming.
    assert "Not quite." not in decision.reply.text
    assert decision.reply.text.startswith("Not this time.")


def test_a_course_can_say_what_follows_the_last_wrong_try(course: Course) -> None:
    data = copy.deepcopy(TINY_COURSE)
    data["nodes"][0]["feedback"]["exhausted"] = {"en": "Let us look at it together."}
    chat = started(parse_course(data, "tiny.yaml"))
    chat.send("14")

    decision = chat.send("16")

    assert decision.reply is not None
    assert decision.reply.text.startswith("Let us look at it together.")


def test_an_answer_offering_two_numbers_is_not_right(course: Course) -> None:
    decision = started(course).send("14 or 15")

    assert decision.events[0].correct is False  # type: ignore[attr-defined]


def test_text_without_a_number_does_not_use_an_attempt(course: Course) -> None:
    chat = started(course)
    decision = chat.send("I am not sure")

    assert decision.session.attempts == 0
    assert decision.events == ()
    assert decision.reply is not None
    assert "number" in decision.reply.text


def test_hints_come_in_order_then_run_out(course: Course) -> None:
    chat = started(course)
    first = chat.send("hint")
    second = chat.send("hint")
    third = chat.send("hint")

    assert first.reply is not None
    assert first.reply.text.startswith("Count on from 7.")
    assert "What is 7 + 8?" in first.reply.text, "the question comes again"
    assert second.reply is not None and "5 more" in second.reply.text
    assert third.reply is not None and "No more hints" in third.reply.text
    assert [type(e) for e in (*first.events, *second.events)] == [HintGiven, HintGiven]
    assert third.events == ()


def test_skip_moves_on_and_records_it(course: Course) -> None:
    decision = started(course).send("skip")

    assert decision.session.node == "add-2"
    assert isinstance(decision.events[0], QuestionSkipped)


def test_a_button_answer_is_judged_on_its_body(course: Course) -> None:
    chat = started(course)
    chat.send("15")
    decision = chat.send("4", kind=Kind.BUTTON)

    assert decision.session.node == "shape-1"
    assert decision.events[0].correct is True  # type: ignore[attr-defined]


def test_a_detour_to_an_easier_question_is_taken_once() -> None:
    data = {**TINY_COURSE, "nodes": [dict(node) for node in TINY_COURSE["nodes"]]}
    data["nodes"][0]["next"] = {"right": "add-2", "wrong": "add-2", "exhausted": None}
    data["nodes"][0]["attempts"] = 3
    data["nodes"][1]["next"] = {"right": "add-1", "exhausted": "add-1"}
    chat = Conversation(parse_course(data, "detour.yaml"))
    chat.send("hi")

    assert chat.send("14").session.node == "add-2", "first wrong answer: detour"
    assert chat.send("4", kind=Kind.BUTTON).session.node == "add-1", "and back"
    assert chat.send("14").session.node == "add-1", "no second detour"


def test_stop_then_hello_resumes_at_the_same_question(course: Course) -> None:
    chat = started(course)
    chat.send("15")
    stopped = chat.send("stop")
    resumed = chat.send("hello")

    assert stopped.session.status is Status.STOPPED
    assert isinstance(stopped.events[0], CourseStopped)
    assert resumed.session.status is Status.ACTIVE
    assert resumed.session.node == "add-2"
    assert resumed.reply is not None and "Pick 2 + 2" in resumed.reply.text


def test_start_restarts_the_course_from_the_beginning(course: Course) -> None:
    chat = started(course)
    chat.send("15")
    decision = chat.send("restart")

    assert decision.session.node == "add-1"
    assert isinstance(decision.events[0], CourseStarted)


def test_the_last_right_answer_completes_the_course(course: Course) -> None:
    chat = started(course)
    chat.send("15")
    chat.send("4", kind=Kind.BUTTON)
    decision = chat.send("it is a triangle")

    assert decision.session.status is Status.FINISHED
    completed = decision.events[-1]
    assert isinstance(completed, CourseCompleted)
    assert (completed.answered, completed.correct) == (3, 3)
    assert decision.reply is not None and "3 of 3" in decision.reply.text


def test_media_gets_a_gentle_reply_and_the_question_again(course: Course) -> None:
    decision = started(course).send(kind=Kind.MEDIA)

    assert decision.reply is not None
    assert "pictures" in decision.reply.text
    assert "What is 7 + 8?" in decision.reply.text
    assert decision.events == ()


def test_a_message_before_starting_invites_the_student(course: Course) -> None:
    decision = Conversation(course).send("15")

    assert decision.session.status is Status.NEW
    assert decision.reply is not None and "Send hi" in decision.reply.text


def test_coming_back_after_the_inactivity_limit_expires_the_attempt(
    course: Course,
) -> None:
    chat = started(course)
    chat.send("14")
    decision = chat.send("15", after=31 * 60)

    assert isinstance(decision.events[0], SessionExpired)
    assert len(decision.events) == 1, "the answer after a long pause is not judged"
    assert decision.session.attempts == 0
    assert decision.reply is not None and "Welcome back" in decision.reply.text


def test_a_redelivered_message_changes_nothing(course: Course) -> None:
    chat = started(course)
    first = chat.send("15")
    again = decide(first.session, chat.sent[-1], course, STUDENT, T0)

    assert again.is_duplicate
    assert again.session is first.session
    assert again.events == ()


def test_a_retry_long_after_the_window_is_still_recognised_by_its_time(
    course: Course,
) -> None:
    chat = started(course)
    first = chat.sent[0]
    for _ in range(RECENT_MESSAGES * 3):
        chat.send("help")

    again = decide(chat.session, first, course, STUDENT, chat.now + 1)

    assert again.is_duplicate


def test_new_messages_sent_within_the_same_second_are_all_applied(
    course: Course,
) -> None:
    chat = started(course)
    for _ in range(RECENT_MESSAGES * 2):
        chat.send("help", after=0.01)
    version = chat.session.version

    assert chat.send("help", after=0.01).session.version == version + 1


def test_a_fresh_navigator_plan_overrides_the_course_graph(course: Course) -> None:
    chat = started(course)
    chat.session = replace(chat.session, plan=("shape-1",), plan_for="add-1")
    decision = chat.send("15")

    assert decision.session.node == "shape-1"


def test_a_stale_navigator_plan_is_ignored(course: Course) -> None:
    chat = started(course)
    chat.session = replace(chat.session, plan=("shape-1",), plan_for="add-2")
    decision = chat.send("15")

    assert decision.session.node == "add-2"


def test_a_course_without_the_navigator_follows_its_graph_whatever_the_plan(
    course: Course,
) -> None:
    fixed = replace(course, navigator=False)
    chat = started(fixed)
    chat.session = replace(chat.session, plan=("shape-1",), plan_for="add-1")
    decision = chat.send("15")

    assert decision.session.node == "add-2"


def test_a_course_file_must_say_navigator_true_or_false() -> None:
    with pytest.raises(CourseError, match="navigator must be true or false"):
        parse_course({**TINY_COURSE, "navigator": "no"}, "tiny.yaml")
    assert not parse_course({**TINY_COURSE, "navigator": False}, "tiny.yaml").navigator


def test_event_ids_are_deterministic_and_sequences_have_no_gaps(course: Course) -> None:
    one, two = Conversation(course), Conversation(course)
    events_one: list[Event] = []
    events_two: list[Event] = []
    for text in ("hi", "14", "hint", "15", "skip"):
        events_one.extend(one.send(text).events)
        events_two.extend(two.send(text).events)

    assert [e.event_id for e in events_one] == [e.event_id for e in events_two]
    assert len({e.event_id for e in events_one}) == len(events_one)
    assert [e.seq for e in events_one] == list(range(1, len(events_one) + 1))
    assert one.session.seq == len(events_one)


def test_a_phone_number_typed_as_an_answer_is_not_recorded(course: Course) -> None:
    decision = started(course).send("call me 98765 43210 or 15")

    answer = decision.events[0].answer  # type: ignore[attr-defined]
    assert "98765" not in answer
    assert "43210" not in answer


messages = st.tuples(
    st.sampled_from(list(Kind)),
    st.one_of(
        st.text(max_size=60),
        st.sampled_from(["hi", "15", "4", "hint", "skip", "stop", "start", "triangle"]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(messages, max_size=25))
def test_every_message_gets_a_reply_and_the_version_only_grows(
    sequence: list[tuple[Kind, str]],
) -> None:
    course = parse_course(TINY_COURSE, "tiny.yaml")
    chat = Conversation(course)
    seen_seq = 0
    for kind, text in sequence:
        before = chat.session.version
        decision = chat.send(text, kind=kind)

        assert decision.reply is not None and decision.reply.text.strip()
        if before:
            assert decision.session.version == before + 1
        else:  # a new session's first version is drawn
            assert 0 < decision.session.version < FIRST_VERSIONS
        for event in decision.events:
            seen_seq += 1
            assert event.seq == seen_seq


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(messages, st.sampled_from([0.0, 0.01, 1.0, 5.0])),
        min_size=1,
        max_size=RECENT_MESSAGES + HORIZON_IDS,
    ),
    st.data(),
)
def test_a_retry_of_any_earlier_message_changes_nothing(
    sequence: list[tuple[tuple[Kind, str], float]], data: st.DataObject
) -> None:
    course = parse_course(TINY_COURSE, "tiny.yaml")
    chat = Conversation(course)
    for (kind, text), pause in sequence:
        chat.send(text, kind=kind, after=pause)

    redelivered = data.draw(st.sampled_from(chat.sent))
    decision = decide(chat.session, redelivered, course, STUDENT, chat.now + 1)

    assert decision.is_duplicate
    assert decision.session == chat.session


def test_a_retry_of_the_message_that_just_left_the_window_is_a_duplicate(
    course: Course,
) -> None:
    chat = started(course)
    for _ in range(RECENT_MESSAGES):
        chat.send("7", after=1.0)

    first, second = chat.sent[1], chat.sent[2]
    assert decide(chat.session, first, course, STUDENT, chat.now).is_duplicate
    chat.send("7", after=1.0)
    assert decide(chat.session, second, course, STUDENT, chat.now).is_duplicate


def test_a_timestamp_far_in_the_future_does_not_lock_the_student_out(
    course: Course,
) -> None:
    chat = started(course)
    future = Inbound("from-the-future", Kind.TEXT, "help", sent_at=0xFFFFFFFF)
    chat.session = decide(chat.session, future, course, STUDENT, chat.now).session
    for _ in range(RECENT_MESSAGES + 1):
        chat.send("help")

    decision = chat.send("hint")

    assert not decision.is_duplicate


def test_a_skipped_word_answer_is_shown_in_the_students_language(
    course: Course,
) -> None:
    chat = started(course)
    chat.send("hindi")
    chat.send("skip")
    chat.send("skip")
    decision = chat.send("skip")

    assert decision.reply is not None
    assert "त्रिभुज" in decision.reply.text and "triangle" not in decision.reply.text


def test_finishing_without_answering_gives_no_score_of_nothing(course: Course) -> None:
    chat = started(course)
    for _ in range(3):
        decision = chat.send("skip")

    assert decision.session.status is Status.FINISHED
    assert decision.reply is not None and "0 of 0" not in decision.reply.text
    assert "end of the course" in decision.reply.text


def test_choosing_a_language_first_starts_the_course_in_it(course: Course) -> None:
    decision = Conversation(course).send("hindi")

    assert decision.session.status is Status.ACTIVE
    assert decision.reply is not None and "7 + 8 कितना है?" in decision.reply.text


def test_large_answers_are_shown_with_indian_grouping() -> None:
    data = {**TINY_COURSE, "nodes": [dict(node) for node in TINY_COURSE["nodes"]]}
    data["nodes"][0]["answer"] = {"number": 125000}
    chat = Conversation(parse_course(data, "big.yaml"))
    chat.send("hi")

    decision = chat.send("skip")

    assert decision.reply is not None and "1,25,000" in decision.reply.text


RESTORED_FIELDS = (
    "seq", "status", "course", "node", "attempts", "hints", "answered", "correct",
    "detour", "asked_at", "last_seen",
)  # fmt: skip


def _recorded_fields(session: Session) -> tuple[object, ...]:
    return tuple(getattr(session, name) for name in RESTORED_FIELDS)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(messages, st.sampled_from([5.0, 5.0, 5.0, 3600.0])), max_size=30
    ),
    st.booleans(),
)
def test_a_session_restored_from_its_events_is_where_the_student_was(
    sequence: list[tuple[tuple[Kind, str], float]], with_detour: bool
) -> None:
    data = {**TINY_COURSE, "nodes": [dict(node) for node in TINY_COURSE["nodes"]]}
    if with_detour:
        data["nodes"][1]["next"] = {**data["nodes"][1]["next"], "wrong": "add-1"}
    course = parse_course(data, "tiny.yaml")
    chat = Conversation(course)
    events: list[Event] = []
    for (kind, text), pause in sequence:
        events.extend(chat.send(text, kind=kind, after=pause).events)

    restored = restore_session(events, course)

    if not events:
        assert restored == Session()
        return
    expected = _recorded_fields(chat.session)
    # NOTE: the last message may have recorded nothing (help, a prompt for a
    # number); the restored session was last seen at the last recorded event.
    assert _recorded_fields(replace(restored, last_seen=0)) == _recorded_fields(
        replace(chat.session, last_seen=0)
    ), expected
    assert restored.last_seen == events[-1].occurred_at
    assert restored.version == 0


def test_a_student_back_after_stop_is_restored_active(course: Course) -> None:
    chat = Conversation(course)
    events = [*chat.send("hi").events, *chat.send("stop").events]
    resumed = chat.send("hi").events

    assert [type(event) for event in resumed] == [CourseResumed]
    restored = restore_session([*events, *resumed], course)
    assert (restored.status, restored.node) == (Status.ACTIVE, chat.session.node)


def test_a_restored_session_carries_on_with_the_next_sequence_number(
    course: Course,
) -> None:
    chat = Conversation(course)
    events = [*chat.send("hi").events, *chat.send("15").events]
    events += chat.send("4").events

    restored = restore_session(events, course)
    answer = Inbound("m-new", Kind.TEXT, "3", sent_at=int(chat.now) + 5)
    decision = decide(restored, answer, course, STUDENT, chat.now + 5)

    assert restored.seq == events[-1].seq
    assert [event.seq for event in decision.events] == [restored.seq + 1]
    assert decision.session.node == chat.session.node


def test_a_session_restored_after_a_loss_never_takes_a_version_it_had_before(
    course: Course,
) -> None:
    # The Navigator read the session at some version, then Redis lost it; the
    # student goes on. A plan checked against the version read must not fit the
    # session rebuilt from the events, however many messages follow.
    chat = Conversation(course)
    history = [*chat.send("hi").events, *chat.send("500").events]
    versions_before = {chat.session.version - 1, chat.session.version}

    later = Conversation(course, restore_session(history, course))
    later.now = chat.now + 60
    versions_after = [later.send(text).session.version for text in LATER]

    assert versions_before.isdisjoint(versions_after)
    assert versions_after == list(
        range(versions_after[0], versions_after[0] + len(LATER))
    )


LATER = ["500", "hint", "600", "help", "7"]


def test_a_first_version_is_drawn_from_the_student_message_and_time() -> None:
    first = next_version(0, STUDENT, "m-1", T0)

    assert 0 < first < FIRST_VERSIONS
    assert next_version(0, STUDENT, "m-1", T0) == first  # the domain stays pure
    assert next_version(0, STUDENT, "m-2", T0) != first
    assert next_version(0, STUDENT, "m-1", T0 + 0.1) != first
    assert next_version(41, STUDENT, "m-1", T0) == 42


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**6), st.floats(-1e9, 1e9))
def test_a_restored_session_starts_far_from_where_its_earlier_life_was(
    message: int, skew: float
) -> None:
    # Whatever the clocks say, a new life of a session lands among the few hundred
    # versions of the old one only by a chance of about one in ten million.
    old = next_version(0, STUDENT, "m-0", T0)
    new = next_version(0, STUDENT, f"m-{message + 1}", T0 + skew)

    assert not old - 500 <= new <= old + 500


def test_text_naming_no_choice_is_asked_again_and_not_judged(course: Course) -> None:
    chat = started(course)
    chat.send("15")  # right: on to "Pick 2 + 2" with buttons 3, 4, 5

    decision = chat.send("foo")

    assert decision.reply is not None
    assert decision.reply.text.startswith("Please pick one of the choices")
    assert decision.events == ()
    assert (decision.session.node, decision.session.attempts) == ("add-2", 0)


def test_a_wrong_choice_typed_is_judged_wrong(course: Course) -> None:
    chat = started(course)
    chat.send("15")

    decision = chat.send("three")

    assert isinstance(decision.events[0], AnswerSubmitted)
    assert decision.events[0].correct is False
