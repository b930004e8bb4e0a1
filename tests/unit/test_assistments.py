"""Reading the ASSISTments skill-builder format, and the replay course built from it."""

from __future__ import annotations

import pytest

from tutorlane.domain.assistments import DatasetError, StudentAnswers, parse_dataset
from tutorlane.domain.course import parse_course
from tutorlane.domain.events import AnswerSubmitted
from tutorlane.domain.messages import Inbound, Kind
from tutorlane.domain.replay import (
    REPLAY_COURSE_ID,
    Step,
    cohort_of,
    phone_of,
    replay_course_data,
    script_of,
    skill_id,
)
from tutorlane.domain.session import Session, decide

GOOD = "3\n82,82,7,\n1,0,1,\n1\n5,\n0,\n"


def test_each_block_becomes_a_student_numbered_by_position() -> None:
    students = parse_dataset(GOOD.splitlines(), "good.csv")

    assert students == [
        StudentAnswers(0, (82, 82, 7), (True, False, True)),
        StudentAnswers(1, (5,), (False,)),
    ]


def test_blank_lines_and_missing_trailing_commas_are_accepted() -> None:
    students = parse_dataset(["", "2", "1,2", " 1,1, ", "", ""], "loose.csv")

    assert students == [StudentAnswers(0, (1, 2), (True, True))]


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("x\n1,\n1,\n", 1, "expected the number of a student's answers"),
        ("0\n\n\n", 1, "a whole number >= 1"),
        ("2\n1,2,3,\n1,1,\n", 2, "expected 2 values, as line 1 says, found 3"),
        ("2\n1,2,\n1,\n", 3, "expected 2 values, as line 1 says, found 1"),
        ("2\n1,a,\n1,1,\n", 2, "'a' is not a whole number"),
        ("2\n1,-2,\n1,1,\n", 2, "'-2' is not a whole number"),
        ("2\n1,2,\n1,2,\n", 3, "flag 2 is not 0 or 1"),
        ("1\n1,\n1,\n2\n1,2,\n", 4, "the file ends inside the student's block"),
        ("\n\n", 1, "holds no student blocks"),
    ],
)
def test_a_malformed_file_is_rejected_naming_the_line(
    text: str, line: int, problem: str
) -> None:
    with pytest.raises(DatasetError) as caught:
        parse_dataset(text.splitlines(), "bad.csv")

    assert caught.value.line == line
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"bad.csv: line {line}: ")


def test_the_replay_course_has_a_menu_and_one_looping_question_per_skill() -> None:
    course = parse_course(replay_course_data([82, 7, 82]), "replay.yaml")

    assert course.id == REPLAY_COURSE_ID
    assert course.start == course.menu == "topics"
    assert set(course.skills) == {"skill-7", "skill-82"}
    assert dict(course.node("topics").routes) == {"7": "q-7", "82": "q-82"}
    question = course.node("q-82")
    assert question.skill == "skill-82" and question.attempts == 1
    assert question.next.right == question.next.exhausted == "q-82"


def test_a_script_picks_a_topic_only_when_the_skill_changes() -> None:
    student = StudentAnswers(0, (82, 82, 7, 82), (True, False, True, False))

    assert script_of(student) == [
        Step("start"),
        Step("82"),
        Step("1", answer=True),
        Step("0", answer=True),
        Step("topics"),
        Step("7"),
        Step("1", answer=True),
        Step("topics"),
        Step("82"),
        Step("0", answer=True),
    ]


def test_students_get_distinct_indian_mobile_numbers() -> None:
    assert phone_of(0) == "+917000000000"
    assert phone_of(3360) == "+917000003360"
    assert phone_of(3360, cohort=42) == "+917042003360"
    with pytest.raises(ValueError, match="out of"):
        phone_of(-1)
    with pytest.raises(ValueError, match="out of"):
        phone_of(0, cohort=1000)


def test_two_files_first_students_are_different_students() -> None:
    assert cohort_of("builder_train.csv") == cohort_of("builder_train.csv")
    assert cohort_of("slice-a.csv") != cohort_of("slice-b.csv")
    assert phone_of(0, cohort_of("slice-a.csv")) != phone_of(
        0, cohort_of("slice-b.csv")
    )


def test_the_session_records_exactly_the_scripted_answers_in_order() -> None:
    students = [
        StudentAnswers(0, (3, 3, 9, 3, 9, 9), (False, True, True, False, False, True)),
        StudentAnswers(1, (9,), (True,)),
    ]
    course = parse_course(replay_course_data([3, 9]), "replay.yaml")

    for student in students:
        session, recorded = Session(), []
        for number, step in enumerate(script_of(student)):
            message = Inbound(f"m-{number}", Kind.TEXT, step.text, sent_at=number)
            decision = decide(session, message, course, "s", 1e9 + number)
            session = decision.session
            recorded += [
                (event.skill, event.correct, event.attempt)
                for event in decision.events
                if isinstance(event, AnswerSubmitted)
            ]
        expected = [
            (skill_id(skill), correct, 1)
            for skill, correct in zip(student.skills, student.correct, strict=True)
        ]
        assert recorded == expected
