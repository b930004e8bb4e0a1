"""Replaying recorded answers as chat: a course with one question per skill, and
what each recorded student types to give their answers in their order.

The course graph cannot know which skill a recorded student answered next; the data
does. So the course opens on a topic menu (one option per skill) and each question
leads back to itself, as a skill builder does: the student practises a skill until
they type `topics` and pick the next one. A recorded answer becomes the reply `1`
(right) or `0` (wrong) to that skill's placeholder question.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tutorlane.domain.assistments import StudentAnswers

REPLAY_COURSE_ID = "assistments-replay"
MENU_NODE = "topics"
RIGHT_REPLY = "1"
WRONG_REPLY = "0"
START_COMMAND = "start"
TOPICS_COMMAND = "topics"
# +91 7000000000 is student 0 of cohort 0; Indian mobile numbers start with 6-9.
FIRST_PHONE = 7_000_000_000


def skill_id(dataset_skill: int) -> str:
    """Return the course's skill id of a dataset skill id."""
    return f"skill-{dataset_skill}"


def question_id(dataset_skill: int) -> str:
    """Return the id of the question node of a dataset skill id."""
    return f"q-{dataset_skill}"


def topic_label(dataset_skill: int) -> str:
    """Return the menu option a student types to pick a dataset skill."""
    return str(dataset_skill)


def phone_of(student_index: int, cohort: int = 0) -> str:
    """Return the SwiftChat number of the `student_index`-th student of a file.

    The `cohort` (0-999, one per file: `cohort_of`) keeps the students of two
    files apart, though both have a first student.
    """
    if not 0 <= student_index < 1_000_000:
        raise ValueError(f"student index {student_index} is out of 0..999,999")
    if not 0 <= cohort < 1000:
        raise ValueError(f"cohort {cohort} is out of 0..999")
    return f"+91{FIRST_PHONE + cohort * 1_000_000 + student_index}"


def cohort_of(file_name: str) -> int:
    """Return the cohort of a dataset file: the same for the same name."""
    return zlib.crc32(file_name.encode("utf-8")) % 1000


def replay_course_data(
    dataset_skills: Iterable[int], course_id: str = REPLAY_COURSE_ID
) -> dict[str, Any]:
    """Return the plain data of a course file with one question per dataset skill."""
    skills = sorted(set(dataset_skills))
    if not skills:
        raise ValueError("a replay course needs at least one skill")
    menu = {
        "id": MENU_NODE,
        "question": "Pick a topic: type its skill number.",
        "routes": {topic_label(skill): question_id(skill) for skill in skills},
    }
    questions = [
        {
            "id": question_id(skill),
            "skill": skill_id(skill),
            "question": (
                f"Skill {skill}: placeholder question of a replayed answer. "
                f"Reply {RIGHT_REPLY} to answer right, {WRONG_REPLY} to answer wrong."
            ),
            "answer": {"number": int(RIGHT_REPLY)},
            "attempts": 1,
            # Practise the skill until the student picks another topic.
            "next": {"right": question_id(skill), "exhausted": question_id(skill)},
        }
        for skill in skills
    ]
    return {
        "course": course_id,
        "title": "ASSISTments replay",
        "start": MENU_NODE,
        "menu": MENU_NODE,
        # The file says which skill each answer was on: no plan may move a student.
        "navigator": False,
        "skills": [
            {"id": skill_id(skill), "name": f"ASSISTments skill {skill}"}
            for skill in skills
        ],
        "nodes": [menu, *questions],
    }


@dataclass(frozen=True, slots=True)
class Step:
    """One message a replayed student sends; `answer` tells whether it answers."""

    text: str
    answer: bool = False


def script_of(student: StudentAnswers) -> list[Step]:
    """Return the messages that give a student's recorded answers in order."""
    steps = [Step(START_COMMAND)]  # a restart puts even a known student on the menu
    current: int | None = None
    for skill, correct in zip(student.skills, student.correct, strict=True):
        if skill != current:
            if current is not None:
                steps.append(Step(TOPICS_COMMAND))
            steps.append(Step(topic_label(skill)))
            current = skill
        steps.append(Step(RIGHT_REPLY if correct else WRONG_REPLY, answer=True))
    return steps
