"""The shipped primary maths course: it parses, and its content holds together."""

from __future__ import annotations

import copy
import re
from collections import deque
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

import tutorlane.flows
from tutorlane.domain.course import (
    ChoiceAnswer,
    Course,
    CourseError,
    Node,
    NumberAnswer,
    PhraseAnswer,
    Text,
    parse_course,
)

COURSE_FILE = Path(tutorlane.flows.__file__).parent / "maths-primary.yaml"
SOURCE = str(COURSE_FILE)

DEVANAGARI = re.compile(r"[\u0900-\u097F]")
LATIN = re.compile(r"[A-Za-z]")
NUMBER = r"(\d[\d,]*(?:\.\d+)?)"
EXPRESSION = re.compile(rf"What is {NUMBER} ([-+−×÷]) {NUMBER}\?")
FRACTION_OF = re.compile(r"What is (\d+)/(\d+) of (\d+)\?")
OPERATIONS: dict[str, Callable[[Decimal, Decimal], Decimal]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "−": lambda a, b: a - b,
    "×": lambda a, b: a * b,
    "÷": lambda a, b: a / b,
}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    with COURSE_FILE.open(encoding="utf-8") as file:
        data = yaml.safe_load(file)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def shipped(raw: dict[str, Any]) -> Course:
    return parse_course(raw, SOURCE)


# Helpers ------------------------------------------------------------------------


def links(node: Node) -> list[str]:
    """Every node a student can go to from `node`."""
    targets = (node.next.right, node.next.wrong, node.next.exhausted)
    return [target for target in targets if target is not None]


def right_path(course: Course) -> list[Node]:
    """The nodes a student meets by answering every question right."""
    path: list[Node] = []
    node_id: str | None = course.start
    while node_id is not None:
        visited = {node.id for node in path}
        assert node_id not in visited, f"the right path loops back to {node_id}"
        node = course.node(node_id)
        path.append(node)
        node_id = node.next.right
    return path


def texts(course: Course) -> Iterator[tuple[str, Text]]:
    """Every text of the course, with where it sits."""
    yield "title", course.title
    for skill in course.skills.values():
        yield f"skill {skill.id} name", skill.name
    for node in course.nodes.values():
        yield f"{node.id} question", node.question
        for index, hint in enumerate(node.hints):
            yield f"{node.id} hint {index + 1}", hint
        yield f"{node.id} right feedback", node.right_feedback
        yield f"{node.id} wrong feedback", node.wrong_feedback


def number(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def expected_number(node: Node) -> Decimal | None:
    """The number a node expects, from a number answer or a numeric button choice."""
    if isinstance(node.answer, NumberAnswer):
        return node.answer.value
    answer = node.answer
    if isinstance(answer, ChoiceAnswer) and re.fullmatch(NUMBER, answer.choice):
        return number(answer.choice)
    return None


def tolerance(node: Node) -> Decimal:
    answer = node.answer
    return answer.tolerance if isinstance(answer, NumberAnswer) else Decimal(0)


def entry(data: dict[str, Any], node_id: str) -> dict[str, Any]:
    """The raw mapping of one node in a copy of the course data."""
    found: dict[str, Any] = next(n for n in data["nodes"] if n["id"] == node_id)
    return found


def skill_entry(data: dict[str, Any], skill_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in data["skills"] if s["id"] == skill_id)
    return found


# The course as a whole ----------------------------------------------------------


def test_the_shipped_course_parses_and_starts_at_a_real_node(shipped: Course) -> None:
    assert shipped.id == "maths-primary"
    assert shipped.has_node(shipped.start)


def test_the_course_has_at_least_40_nodes_over_at_least_6_skills(
    shipped: Course,
) -> None:
    assert len(shipped.nodes) >= 40
    assert len(shipped.skills) >= 6


def test_every_node_is_reachable_from_the_start(shipped: Course) -> None:
    reached = {shipped.start}
    queue = deque([shipped.start])
    while queue:
        for target in links(shipped.node(queue.popleft())):
            if target not in reached:
                reached.add(target)
                queue.append(target)
    assert set(shipped.nodes) - reached == set()


def test_every_text_is_written_in_english_and_in_hindi(shipped: Course) -> None:
    for where, text in texts(shipped):
        assert set(text.by_language) == {"en", "hi"}, where
        assert DEVANAGARI.search(text.by_language["hi"]), f"{where}: hi is not Hindi"
        assert not DEVANAGARI.search(text.by_language["en"]), f"{where}: en has Hindi"


def test_every_declared_skill_is_taught_by_some_node(shipped: Course) -> None:
    taught = {node.skill for node in shipped.nodes.values()}
    assert set(shipped.skills) - taught == set()


def test_skill_ids_are_lowercase_words_joined_by_hyphens(shipped: Course) -> None:
    for skill_id in shipped.skills:
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", skill_id), skill_id


# Answers and buttons ------------------------------------------------------------


def test_at_least_eight_nodes_offer_buttons(shipped: Course) -> None:
    with_buttons = [node for node in shipped.nodes.values() if node.buttons]
    assert len(with_buttons) >= 8


def test_most_button_nodes_are_answered_by_choosing_one_button(
    shipped: Course,
) -> None:
    with_buttons = [node for node in shipped.nodes.values() if node.buttons]
    choices = [node for node in with_buttons if isinstance(node.answer, ChoiceAnswer)]
    assert len(choices) * 2 > len(with_buttons)
    for node in choices:
        assert isinstance(node.answer, ChoiceAnswer)
        assert node.answer.choice in node.buttons, node.id
        assert len(node.buttons) >= 2, node.id


def test_the_answer_kinds_are_mixed(shipped: Course) -> None:
    answers = [node.answer for node in shipped.nodes.values()]
    numbers = [a for a in answers if isinstance(a, NumberAnswer)]
    assert len(numbers) * 2 > len(answers), "most answers should be numbers"
    assert sum(1 for a in numbers if a.tolerance > 0) >= 3
    assert sum(1 for a in answers if isinstance(a, PhraseAnswer)) >= 3
    assert sum(1 for a in answers if isinstance(a, ChoiceAnswer)) >= 6


def test_word_answers_accept_english_and_hindi_phrases(shipped: Course) -> None:
    for node in shipped.nodes.values():
        if isinstance(node.answer, PhraseAnswer):
            phrases = node.answer.phrases
            assert any(LATIN.search(p) for p in phrases), node.id
            assert any(DEVANAGARI.search(p) for p in phrases), node.id


def test_simple_arithmetic_questions_expect_the_computed_answer(
    shipped: Course,
) -> None:
    checked = 0
    for node in shipped.nodes.values():
        match = EXPRESSION.fullmatch(node.question.in_language("en"))
        expected = expected_number(node)
        if match is None or expected is None:
            continue
        left, operator, right = match.groups()
        result = OPERATIONS[operator](number(left), number(right))
        assert abs(result - expected) <= tolerance(node), f"{node.id}: {result}"
        expression = f"{left} {operator} {right}"
        assert expression in node.question.in_language("hi"), node.id
        checked += 1
    assert checked >= 15, "the arithmetic check should cover many questions"


def test_fraction_of_a_number_questions_expect_the_computed_answer(
    shipped: Course,
) -> None:
    checked = 0
    for node in shipped.nodes.values():
        match = FRACTION_OF.fullmatch(node.question.in_language("en"))
        expected = expected_number(node)
        if match is None or expected is None:
            continue
        top, bottom, whole = (Decimal(group) for group in match.groups())
        assert whole * top / bottom == expected, node.id
        checked += 1
    assert checked >= 2


# Pacing and paths ---------------------------------------------------------------


def test_every_node_gives_one_or_two_hints_and_two_or_three_attempts(
    shipped: Course,
) -> None:
    for node in shipped.nodes.values():
        assert 1 <= len(node.hints) <= 2, node.id
        assert node.attempts in (2, 3), node.id


def test_the_right_answer_path_meets_prerequisites_before_the_skills_needing_them(
    shipped: Course,
) -> None:
    seen: set[str] = set()
    for node in right_path(shipped):
        missing = set(shipped.skills[node.skill].requires) - seen
        assert not missing, f"{node.id} ({node.skill}) comes before {missing}"
        seen.add(node.skill)


def test_the_right_answer_path_covers_every_skill_once_in_one_stretch(
    shipped: Course,
) -> None:
    skills_in_order: list[str] = []
    for node in right_path(shipped):
        if not skills_in_order or skills_in_order[-1] != node.skill:
            skills_in_order.append(node.skill)
    assert sorted(skills_in_order) == sorted(shipped.skills)


def test_the_last_node_ends_the_course_whatever_the_answer(shipped: Course) -> None:
    last = right_path(shipped)[-1]
    assert last.next.right is None
    assert last.next.exhausted is None


def test_the_course_ends_only_at_the_last_node(shipped: Course) -> None:
    last = right_path(shipped)[-1]
    for node in shipped.nodes.values():
        if node is not last:
            assert node.next.right is not None, node.id
            assert node.next.exhausted is not None, node.id


def test_wrong_answer_detours_are_easier_nodes_of_the_same_skill_that_lead_back(
    shipped: Course,
) -> None:
    detours = [node for node in shipped.nodes.values() if node.next.wrong]
    assert 2 <= len(detours) <= 4
    main_path = {node.id for node in right_path(shipped)}
    for node in detours:
        assert node.next.wrong is not None
        remedial = shipped.node(node.next.wrong)
        assert remedial.skill == node.skill, node.id
        assert remedial.id not in main_path, node.id
        assert remedial.next.right == node.id, remedial.id
        assert remedial.next.exhausted == node.id, remedial.id


# Broken copies ------------------------------------------------------------------


def point_add_2_at_a_missing_node(data: dict[str, Any]) -> None:
    entry(data, "add-2")["next"]["right"] = "add-99"


def give_geo_3_an_undeclared_skill(data: dict[str, Any]) -> None:
    entry(data, "geo-3")["skill"] = "astronomy"


def make_the_mul_2_choice_not_a_button(data: dict[str, Any]) -> None:
    entry(data, "mul-2")["answer"] = {"choice": "73"}


def give_frac_1_a_button_that_is_too_long(data: dict[str, Any]) -> None:
    entry(data, "frac-1")["buttons"][0] = "one half of the roti, please"


def drop_the_english_question_of_dec_1(data: dict[str, Any]) -> None:
    del entry(data, "dec-1")["question"]["en"]


@pytest.mark.parametrize(
    ("break_it", "node_id", "detail"),
    [
        (point_add_2_at_a_missing_node, "add-2", "'add-99'"),
        (give_geo_3_an_undeclared_skill, "geo-3", "'astronomy'"),
        (make_the_mul_2_choice_not_a_button, "mul-2", "'73'"),
        (give_frac_1_a_button_that_is_too_long, "frac-1", "characters"),
        (drop_the_english_question_of_dec_1, "dec-1", "English"),
    ],
)
def test_a_broken_copy_is_rejected_naming_the_file_and_the_node(
    raw: dict[str, Any],
    break_it: Callable[[dict[str, Any]], None],
    node_id: str,
    detail: str,
) -> None:
    broken = copy.deepcopy(raw)
    break_it(broken)
    with pytest.raises(CourseError) as caught:
        parse_course(broken, SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: node '{node_id}': ")
    assert detail in message
    assert caught.value.source == SOURCE
    assert caught.value.where == f"node '{node_id}'"


def test_a_copy_with_a_prerequisite_cycle_is_rejected_naming_the_file_and_skill(
    raw: dict[str, Any],
) -> None:
    broken = copy.deepcopy(raw)
    skill_entry(broken, "place-value")["requires"] = ["geometry"]
    with pytest.raises(CourseError) as caught:
        parse_course(broken, SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: skill 'place-value': ")
    assert "prerequisite cycle" in message
    assert "geometry" in message
