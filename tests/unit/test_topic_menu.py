"""Topic menus: a node that routes by the student's choice, and the topics command."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tutorlane.domain.answers import choose_route
from tutorlane.domain.course import Course, CourseError, parse_course
from tutorlane.domain.events import AnswerSubmitted, CourseStarted, QuestionSkipped
from tutorlane.domain.messages import Inbound, Kind
from tutorlane.domain.session import Decision, Session, decide
from tutorlane.tests.courses import TINY_COURSE

STUDENT = "student-pseudonym"


def menu_course_data() -> dict[str, Any]:
    """The tiny course behind a menu of its two skills; each question loops."""
    data = copy.deepcopy(TINY_COURSE)
    data["start"] = "topics"
    data["menu"] = "topics"
    data["nodes"].insert(
        0,
        {
            "id": "topics",
            "question": {"en": "Pick a topic", "hi": "विषय चुनो"},
            "routes": {"Adding / जोड़": "add-1", "Shapes": "shape-1", "12": "add-2"},
            "buttons": ["Adding / जोड़", "Shapes"],
        },
    )
    data["nodes"][3]["next"] = {"right": "shape-1"}  # shape-1 loops on itself
    return data


@pytest.fixture
def menu_course() -> Course:
    return parse_course(menu_course_data(), "menu.yaml")


class Student:
    """Sends messages through `decide` in order, as the fast lane would."""

    def __init__(self, course: Course) -> None:
        self.course = course
        self.session = Session()
        self.count = 0

    def send(self, text: str) -> Decision:
        self.count += 1
        message = Inbound(f"m-{self.count}", Kind.TEXT, text, sent_at=self.count)
        decision = decide(self.session, message, self.course, STUDENT, 1e9 + self.count)
        self.session = decision.session
        return decision


def test_a_menu_node_parses_with_its_routes_and_no_skill(menu_course: Course) -> None:
    menu = menu_course.node("topics")

    assert menu.is_menu and menu.answer is None and menu.skill == ""
    assert dict(menu.routes) == {
        "Adding / जोड़": "add-1",
        "Shapes": "shape-1",
        "12": "add-2",
    }
    assert menu_course.menu == "topics"
    assert not menu_course.node("add-1").is_menu


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda n: n.update(routes={"A": "nowhere"}, buttons=["A"]),
            "points at unknown node",
        ),
        (lambda n: n.update(answer={"number": 1}), "has no ['answer']"),
        (lambda n: n.update(skill="addition"), "has no ['skill']"),
        (lambda n: n.update(routes={}), "routes must map"),
        (lambda n: n.update(buttons=["Other"]), "buttons are at most"),
        (lambda n: n.pop("question"), "has no question"),
    ],
)
def test_a_broken_menu_node_is_rejected_naming_the_node(
    change: Any, problem: str
) -> None:
    data = menu_course_data()
    change(data["nodes"][0])

    with pytest.raises(CourseError, match=re.escape(problem)) as caught:
        parse_course(data, "menu.yaml")
    assert caught.value.where == "node 'topics'"


def test_the_course_menu_must_name_a_menu_node() -> None:
    data = menu_course_data()
    data["menu"] = "add-1"

    with pytest.raises(CourseError, match="must name a node that has routes"):
        parse_course(data, "menu.yaml")


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("Shapes", "shape-1"),
        ("  shapes! ", "shape-1"),
        ("Adding / जोड़", "add-1"),
        ("जोड़", "add-1"),
        ("adding", "add-1"),
        ("12", "add-2"),
        ("twelve", "add-2"),
        ("13", None),
        ("triangles", None),
        ("", None),
    ],
)
def test_a_reply_chooses_the_option_it_names(text: str, target: str | None) -> None:
    routes = (("Adding / जोड़", "add-1"), ("Shapes", "shape-1"), ("12", "add-2"))

    assert choose_route(routes, text) == target


def test_choosing_a_topic_asks_its_question_and_records_no_event(
    menu_course: Course,
) -> None:
    student = Student(menu_course)
    greeting = student.send("hi")
    chosen = student.send("Shapes")

    assert [type(e) for e in greeting.events] == [CourseStarted]
    assert greeting.reply is not None and "Pick a topic" in greeting.reply.text
    assert greeting.reply.buttons == ("Adding / जोड़", "Shapes")
    assert chosen.events == ()
    assert chosen.session.node == "shape-1"
    assert chosen.reply is not None and "three sides" in chosen.reply.text


def test_a_reply_naming_no_topic_asks_again_without_judging(
    menu_course: Course,
) -> None:
    student = Student(menu_course)
    student.send("hi")
    decision = student.send("banana")

    assert decision.events == ()
    assert decision.session.node == "topics"
    assert decision.reply is not None
    assert decision.reply.text.startswith("Please pick one of the topics.")


def test_skip_on_a_menu_records_nothing_and_asks_for_a_topic(
    menu_course: Course,
) -> None:
    student = Student(menu_course)
    student.send("hi")
    decision = student.send("skip")

    assert decision.events == ()
    assert decision.session.node == "topics"


def test_the_topics_command_opens_the_menu_from_a_question(
    menu_course: Course,
) -> None:
    student = Student(menu_course)
    student.send("hi")
    student.send("Shapes")
    answered = student.send("triangle")
    opened = student.send("topics")
    chosen = student.send("adding")
    right = student.send("15")

    assert [type(e) for e in answered.events] == [AnswerSubmitted]
    assert answered.session.node == "shape-1", "the shape question loops on itself"
    assert opened.events == () and opened.session.node == "topics"
    assert chosen.session.node == "add-1"
    assert [(e.skill, e.correct) for e in right.events] == [("addition", True)]  # type: ignore[attr-defined]
    assert not any(isinstance(e, QuestionSkipped) for e in right.events)


def test_the_topics_command_in_a_course_without_menu_keeps_the_question() -> None:
    student = Student(parse_course(TINY_COURSE, "tiny.yaml"))
    student.send("hi")
    decision = student.send("topics")

    assert decision.events == ()
    assert decision.session.node == "add-1"
    assert decision.reply is not None and "What is 7 + 8?" in decision.reply.text


def test_the_topics_command_before_starting_invites_to_start(
    menu_course: Course,
) -> None:
    decision = Student(menu_course).send("topics")

    assert decision.events == ()
    assert decision.reply is not None and "Send hi" in decision.reply.text


def test_the_navigator_never_plans_a_menu_and_plans_around_one(
    menu_course: Course,
) -> None:
    from tutorlane.domain.knowledge import SkillKnowledge
    from tutorlane.domain.navigator import Navigator

    navigator = Navigator(menu_course)
    struggling = {"addition": SkillKnowledge("addition", 0.1, attempts=4)}

    plan = navigator.plan(struggling, {"addition": 0.0}, "add-1", [], 100.0)

    assert plan
    assert all(not menu_course.node(node_id).is_menu for node_id in plan)
    assert navigator.plan({}, {}, "topics", [], 100.0) == navigator.plan(
        {}, {}, "topics", [], 100.0
    )
