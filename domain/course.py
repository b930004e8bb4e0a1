"""The content graph: a course of skills and question nodes, parsed from plain data.

A course arrives as the plain data of a YAML file (see `flows/README.md` for the
format). `parse_course` checks everything a running tutor relies on (every link points
at a node that exists, every skill is declared, prerequisites have no cycles) and
raises `CourseError` naming the file, the node and the problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

DEFAULT_LANGUAGE = "en"
MAX_BUTTONS = 10
MAX_BUTTON_TEXT = 20
LANGUAGES = ("en", "hi")


class CourseError(ValueError):
    """A course file is broken; the message names the file, the node and the fix."""

    def __init__(self, source: str, where: str, problem: str) -> None:
        super().__init__(f"{source}: {where}: {problem}")
        self.source = source
        self.where = where
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Text:
    """A message in several languages; a missing language falls back to English."""

    by_language: Mapping[str, str]

    def in_language(self, language: str) -> str:
        """Return the text in `language`, or in the default language."""
        return self.by_language.get(language) or self.by_language[DEFAULT_LANGUAGE]


@dataclass(frozen=True, slots=True)
class BKTParameters:
    """Bayesian Knowledge Tracing parameters of one skill."""

    prior: float = 0.3
    learn: float = 0.1
    guess: float = 0.2
    slip: float = 0.1
    forget: float = 0.0


@dataclass(frozen=True, slots=True)
class Skill:
    """A skill the course trains, with the skills it requires first."""

    id: str
    name: Text
    requires: tuple[str, ...] = ()
    bkt: BKTParameters = field(default_factory=BKTParameters)


@dataclass(frozen=True, slots=True)
class NumberAnswer:
    """A numeric answer, right when within `tolerance` of `value`."""

    value: Decimal
    tolerance: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class PhraseAnswer:
    """A word answer, right when it matches one of `phrases` (any language)."""

    phrases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChoiceAnswer:
    """A button answer, right when the chosen button's reply is `choice`."""

    choice: str


Answer = NumberAnswer | PhraseAnswer | ChoiceAnswer


@dataclass(frozen=True, slots=True)
class Next:
    """Where a student goes after a right answer, a wrong one, or the last attempt.

    `None` means the end of the course.
    """

    right: str | None
    wrong: str | None
    exhausted: str | None


# What the tutor says when the last try is wrong too, before showing the answer:
# a node's wrong feedback usually asks for another try, which is not coming.
DEFAULT_EXHAUSTED = Text({"en": "Not this time.", "hi": "इस बार नहीं।"})


@dataclass(frozen=True, slots=True)
class Node:
    """One question of the course, or a menu that routes by the student's choice.

    A menu node has `routes` (option label, node id) and no answer and no skill
    (`skill` is empty): choosing an option moves the student there, unjudged.
    """

    id: str
    skill: str
    question: Text
    answer: Answer | None
    buttons: tuple[str, ...]
    hints: tuple[Text, ...]
    right_feedback: Text
    wrong_feedback: Text
    attempts: int
    next: Next
    routes: tuple[tuple[str, str], ...] = ()
    exhausted_feedback: Text = DEFAULT_EXHAUSTED

    @property
    def is_menu(self) -> bool:
        """Tell whether this node routes by choice instead of asking a question."""
        return bool(self.routes)


@dataclass(frozen=True, slots=True)
class Course:
    """A whole course: its skills, its nodes, the node it starts at, and its menu.

    `menu`, when set, names the menu node that the `topics` command opens.
    `navigator` tells whether the Navigator's plan may choose a student's next
    question; without it the graph alone decides.
    """

    id: str
    title: Text
    start: str
    skills: Mapping[str, Skill]
    nodes: Mapping[str, Node]
    menu: str | None = None
    navigator: bool = True

    def node(self, node_id: str) -> Node:
        """Return the node called `node_id`."""
        return self.nodes[node_id]

    def has_node(self, node_id: str | None) -> bool:
        """Tell whether `node_id` names a node of this course."""
        return node_id is not None and node_id in self.nodes


_BKT_KEYS = ("prior", "learn", "guess", "slip", "forget")
_MENU_KEYS = {"id", "question", "routes", "buttons"}

DEFAULT_RIGHT = Text({"en": "Correct!", "hi": "सही जवाब!"})
DEFAULT_WRONG = Text(
    {"en": "Not quite. Try again.", "hi": "सही नहीं है। फिर से कोशिश करो।"}
)


def parse_course(data: Any, source: str) -> Course:
    """Build a `Course` from the plain data of a course file, or raise `CourseError`."""
    reader = _CourseReader(source)
    return reader.read(data)


class _CourseReader:
    """Reads one course document, keeping the file name for its error messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> CourseError:
        return CourseError(self.source, where, problem)

    def read(self, data: Any) -> Course:
        if not isinstance(data, Mapping):
            raise self.fail(
                "top level", "expected a mapping with course, skills, nodes"
            )
        course_id = self.identifier(data.get("course"), "top level", "course")
        title = self.text(data.get("title", course_id), "top level", "title")

        skills = self.skills(data.get("skills"))
        nodes = self.nodes(data.get("nodes"), skills)
        start = data.get("start")
        if start is None and nodes:
            start = next(iter(nodes))
        if not isinstance(start, str) or start not in nodes:
            raise self.fail("top level", f"start node {start!r} is not among the nodes")

        menu = data.get("menu")
        if menu is not None and (
            not isinstance(menu, str) or menu not in nodes or not nodes[menu].is_menu
        ):
            raise self.fail(
                "top level", f"menu {menu!r} must name a node that has routes"
            )

        navigator = data.get("navigator", True)
        if not isinstance(navigator, bool):
            raise self.fail(
                "top level", f"navigator must be true or false, not {navigator!r}"
            )

        self.check_links(nodes)
        return Course(course_id, title, start, skills, nodes, menu, navigator)

    # Skills ---------------------------------------------------------------------

    def skills(self, raw: Any) -> dict[str, Skill]:
        if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
            raise self.fail("skills", "expected a non-empty list of skills")
        skills: dict[str, Skill] = {}
        for index, entry in enumerate(raw):
            where = f"skill #{index + 1}"
            if not isinstance(entry, Mapping):
                raise self.fail(where, "expected a mapping with id, name, requires")
            skill_id = self.identifier(entry.get("id"), where, "id")
            where = f"skill {skill_id!r}"
            if skill_id in skills:
                raise self.fail(where, "declared twice")
            requires = self.string_list(entry.get("requires", []), where, "requires")
            skills[skill_id] = Skill(
                id=skill_id,
                name=self.text(entry.get("name", skill_id), where, "name"),
                requires=tuple(requires),
                bkt=self.bkt(entry.get("bkt", {}), where),
            )

        for skill in skills.values():
            for required in skill.requires:
                if required not in skills:
                    raise self.fail(
                        f"skill {skill.id!r}",
                        f"requires unknown skill {required!r}; declare it under skills",
                    )
        self.check_no_cycles(skills)
        return skills

    def bkt(self, raw: Any, where: str) -> BKTParameters:
        if not isinstance(raw, Mapping):
            raise self.fail(where, "bkt must be a mapping of prior, learn, guess, slip")
        values: dict[str, float] = {}
        for name in _BKT_KEYS:
            if name not in raw:
                continue
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(where, f"bkt.{name} must be a number, not {value!r}")
            if not 0 <= value <= 1:
                raise self.fail(where, f"bkt.{name} must be between 0 and 1")
            values[name] = float(value)
        unknown = set(raw) - set(_BKT_KEYS)
        if unknown:
            raise self.fail(where, f"unknown bkt keys {sorted(unknown)}")
        return BKTParameters(**values)

    def check_no_cycles(self, skills: Mapping[str, Skill]) -> None:
        done: set[str] = set()

        def visit(skill_id: str, path: tuple[str, ...]) -> None:
            if skill_id in path:
                cycle = " -> ".join((*path[path.index(skill_id) :], skill_id))
                raise self.fail(f"skill {skill_id!r}", f"prerequisite cycle {cycle}")
            if skill_id in done:
                return
            for required in skills[skill_id].requires:
                visit(required, (*path, skill_id))
            done.add(skill_id)

        for skill_id in skills:
            visit(skill_id, ())

    # Nodes ----------------------------------------------------------------------

    def nodes(self, raw: Any, skills: Mapping[str, Skill]) -> dict[str, Node]:
        if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
            raise self.fail("nodes", "expected a non-empty list of nodes")
        nodes: dict[str, Node] = {}
        for index, entry in enumerate(raw):
            where = f"node #{index + 1}"
            if not isinstance(entry, Mapping):
                raise self.fail(where, "expected a mapping with id, skill, question")
            node_id = self.identifier(entry.get("id"), where, "id")
            where = f"node {node_id!r}"
            if node_id in nodes:
                raise self.fail(where, "declared twice; node ids must be unique")
            nodes[node_id] = self.node(node_id, entry, skills, where)
        return nodes

    def node(
        self,
        node_id: str,
        entry: Mapping[str, Any],
        skills: Mapping[str, Skill],
        where: str,
    ) -> Node:
        if "routes" in entry:
            return self.menu_node(node_id, entry, where)
        known = {
            "id", "skill", "question", "answer", "buttons", "hints",
            "feedback", "attempts", "next",
        }  # fmt: skip
        unknown = set(entry) - known
        if unknown:
            raise self.fail(where, f"unknown keys {sorted(unknown)}")

        skill = entry.get("skill")
        if not isinstance(skill, str) or skill not in skills:
            raise self.fail(where, f"skill {skill!r} is not declared under skills")
        if "question" not in entry:
            raise self.fail(where, "has no question")
        buttons = tuple(self.string_list(entry.get("buttons", []), where, "buttons"))
        if len(buttons) > MAX_BUTTONS or any(len(b) > MAX_BUTTON_TEXT for b in buttons):
            limits = f"{MAX_BUTTONS} buttons of at most {MAX_BUTTON_TEXT} characters"
            raise self.fail(where, f"at most {limits}")
        if len(set(buttons)) != len(buttons):
            raise self.fail(where, "buttons must differ from each other")
        answer = self.answer(entry.get("answer"), buttons, where)

        feedback = entry.get("feedback", {})
        if not isinstance(feedback, Mapping) or set(feedback) - {
            "right",
            "wrong",
            "exhausted",
        }:
            raise self.fail(
                where, "feedback must be a mapping of right, wrong and exhausted"
            )
        attempts = entry.get("attempts", 2)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise self.fail(
                where, f"attempts must be a whole number >= 1: {attempts!r}"
            )
        hints = entry.get("hints", [])
        if not isinstance(hints, Sequence) or isinstance(hints, str):
            raise self.fail(where, "hints must be a list of texts")

        return Node(
            id=node_id,
            skill=skill,
            question=self.text(entry["question"], where, "question"),
            answer=answer,
            buttons=buttons,
            hints=tuple(self.text(hint, where, "hints") for hint in hints),
            right_feedback=self.text(
                feedback.get("right", DEFAULT_RIGHT), where, "right"
            ),
            wrong_feedback=self.text(
                feedback.get("wrong", DEFAULT_WRONG), where, "wrong"
            ),
            attempts=attempts,
            next=self.next(entry.get("next", {}), where),
            exhausted_feedback=self.text(
                feedback.get("exhausted", DEFAULT_EXHAUSTED), where, "exhausted"
            ),
        )

    def menu_node(self, node_id: str, entry: Mapping[str, Any], where: str) -> Node:
        unknown = set(entry) - _MENU_KEYS
        if unknown:
            raise self.fail(
                where,
                f"a menu node (one with routes) has no {sorted(unknown)}; it takes "
                f"only {sorted(_MENU_KEYS)}",
            )
        if "question" not in entry:
            raise self.fail(where, "has no question (the menu's prompt)")
        raw = entry["routes"]
        if not isinstance(raw, Mapping) or not raw:
            raise self.fail(where, "routes must map each option's label to a node id")
        routes: list[tuple[str, str]] = []
        for label, target in raw.items():
            if isinstance(label, bool) or not isinstance(label, str | int):
                raise self.fail(where, f"route label {label!r} must be text")
            if not str(label).strip() or not isinstance(target, str):
                raise self.fail(where, f"route {label!r} must lead to a node id")
            routes.append((str(label), target))
        buttons = tuple(self.string_list(entry.get("buttons", []), where, "buttons"))
        labels = {label for label, _ in routes}
        if len(buttons) > MAX_BUTTONS or not set(buttons) <= labels:
            raise self.fail(
                where, f"a menu's buttons are at most {MAX_BUTTONS} of its route labels"
            )
        return Node(
            id=node_id,
            skill="",
            question=self.text(entry["question"], where, "question"),
            answer=None,
            buttons=buttons,
            hints=(),
            right_feedback=DEFAULT_RIGHT,
            wrong_feedback=DEFAULT_WRONG,
            attempts=1,
            next=Next(None, None, None),
            routes=tuple(routes),
        )

    def answer(self, raw: Any, buttons: tuple[str, ...], where: str) -> Answer:
        if not isinstance(raw, Mapping):
            raise self.fail(
                where, "answer must be a mapping: number, phrases or choice"
            )
        kinds = {"number", "phrases", "choice"} & set(raw)
        if len(kinds) != 1:
            raise self.fail(
                where, "answer needs exactly one of number, phrases, choice"
            )
        unknown = set(raw) - {"number", "tolerance", "phrases", "choice"}
        if unknown:
            raise self.fail(where, f"unknown answer keys {sorted(unknown)}")
        if "tolerance" in raw and "number" not in raw:
            raise self.fail(where, "answer.tolerance only goes with answer.number")

        if "number" in raw:
            value = self.decimal(raw["number"], where, "answer.number")
            tolerance = self.decimal(raw.get("tolerance", 0), where, "answer.tolerance")
            if tolerance < 0:
                raise self.fail(where, "answer.tolerance must not be negative")
            return NumberAnswer(value, tolerance)
        if "phrases" in raw:
            phrases = raw["phrases"]
            if isinstance(phrases, Mapping):
                phrases = [p for group in phrases.values() for p in _as_list(group)]
            listed = self.string_list(phrases, where, "answer.phrases")
            if not listed:
                raise self.fail(where, "answer.phrases must list at least one phrase")
            return PhraseAnswer(tuple(listed))

        choice = raw["choice"]
        if not isinstance(choice, str | int) or isinstance(choice, bool):
            raise self.fail(where, f"answer.choice must be text, not {choice!r}")
        if not buttons:
            raise self.fail(where, "answer.choice needs buttons to choose from")
        if str(choice) not in buttons:
            raise self.fail(
                where, f"answer.choice {choice!r} is not one of the buttons"
            )
        return ChoiceAnswer(str(choice))

    def next(self, raw: Any, where: str) -> Next:
        if not isinstance(raw, Mapping):
            raise self.fail(where, "next must be a mapping of right, wrong, exhausted")
        unknown = set(raw) - {"right", "wrong", "exhausted"}
        if unknown:
            raise self.fail(where, f"unknown next keys {sorted(unknown)}")
        links: dict[str, str | None] = {}
        for outcome in ("right", "wrong", "exhausted"):
            target = raw.get(outcome)
            if target is not None and not isinstance(target, str):
                raise self.fail(where, f"next.{outcome} must be a node id or empty")
            links[outcome] = target
        # NOTE: a wrong answer with attempts left stays on the node unless told
        # otherwise; after the last attempt the student moves on like after a right
        # answer, so that nobody is stuck on a question forever.
        return Next(
            right=links["right"],
            wrong=links["wrong"],
            exhausted=links["exhausted"] if "exhausted" in raw else links["right"],
        )

    def check_links(self, nodes: Mapping[str, Node]) -> None:
        for node in nodes.values():
            for label, target in node.routes:
                if target not in nodes:
                    raise self.fail(
                        f"node {node.id!r}",
                        f"route {label!r} points at unknown node {target!r}",
                    )
            for outcome in ("right", "wrong", "exhausted"):
                target = getattr(node.next, outcome)
                if target is not None and target not in nodes:
                    raise self.fail(
                        f"node {node.id!r}",
                        f"next.{outcome} points at unknown node {target!r}",
                    )

    # Values ---------------------------------------------------------------------

    def identifier(self, raw: Any, where: str, key: str) -> str:
        if not isinstance(raw, str) or not raw.strip():
            raise self.fail(where, f"{key} must be a non-empty name, not {raw!r}")
        if any(char.isspace() for char in raw) or len(raw) > 64:
            raise self.fail(
                where, f"{key} {raw!r} must be one word of at most 64 chars"
            )
        return raw

    def text(self, raw: Any, where: str, key: str) -> Text:
        if isinstance(raw, Text):
            return raw
        if isinstance(raw, str | int | float) and not isinstance(raw, bool):
            return Text({DEFAULT_LANGUAGE: str(raw)})
        if isinstance(raw, Mapping) and raw:
            unknown = set(raw) - set(LANGUAGES)
            if unknown:
                raise self.fail(where, f"{key} has unknown languages {sorted(unknown)}")
            if DEFAULT_LANGUAGE not in raw:
                raise self.fail(
                    where, f"{key} needs an English ({DEFAULT_LANGUAGE}) text"
                )
            if not all(isinstance(v, str) and v.strip() for v in raw.values()):
                raise self.fail(where, f"{key} texts must be non-empty strings")
            return Text(dict(raw))
        raise self.fail(where, f"{key} must be a text or a mapping of language to text")

    def string_list(self, raw: Any, where: str, key: str) -> list[str]:
        if not isinstance(raw, Sequence) or isinstance(raw, str):
            raise self.fail(where, f"{key} must be a list")
        values = []
        for item in raw:
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise self.fail(where, f"{key} holds {item!r}, which is not text")
            values.append(str(item))
        return values

    def decimal(self, raw: Any, where: str, key: str) -> Decimal:
        if isinstance(raw, bool):
            raise self.fail(where, f"{key} must be a number, not {raw!r}")
        try:
            value = Decimal(str(raw))
        except InvalidOperation:
            raise self.fail(where, f"{key} must be a number, not {raw!r}") from None
        if not value.is_finite():
            raise self.fail(where, f"{key} must be a finite number")
        return value


def _as_list(value: Any) -> list[Any]:
    return (
        list(value)
        if isinstance(value, Sequence) and not isinstance(value, str)
        else [value]
    )
