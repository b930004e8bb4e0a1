"""The ASSISTments skill-builder format: three lines per student, in answer order.

Each student's block is the number of answers N, then N skill ids, then N flags (1
right, 0 wrong), comma separated with a trailing comma. The file has no student ids:
a student is known by the position of their block. `parse_dataset` raises
`DatasetError` naming the line and what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class DatasetError(ValueError):
    """A dataset file is malformed; the message names the file, the line and why."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source}: line {line}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


@dataclass(frozen=True, slots=True)
class StudentAnswers:
    """One student's answers in order: the skill id and correctness of each."""

    index: int
    skills: tuple[int, ...]
    correct: tuple[bool, ...]
    cohort: int = 0  # which file the student came from (see `replay.cohort_of`)

    def __len__(self) -> int:
        return len(self.skills)


def parse_dataset(lines: Iterable[str], source: str) -> list[StudentAnswers]:
    """Read every student block of a skill-builder file, or raise `DatasetError`."""
    students: list[StudentAnswers] = []
    numbered = enumerate((line.strip() for line in lines), start=1)
    for number, count_line in numbered:
        if not count_line:
            continue  # blank lines between or after blocks carry nothing
        count = _count(count_line, source, number)
        skills = _values(next(numbered, None), count, source, number)
        flags = _values(next(numbered, None), count, source, number)
        bad = [flag for flag in flags if flag > 1]
        if bad:
            raise DatasetError(source, number + 2, f"flag {bad[0]} is not 0 or 1")
        students.append(
            StudentAnswers(
                index=len(students),
                skills=tuple(skills),
                correct=tuple(flag == 1 for flag in flags),
            )
        )
    if not students:
        raise DatasetError(source, 1, "holds no student blocks")
    return students


def _count(text: str, source: str, number: int) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise DatasetError(
            source,
            number,
            "expected the number of a student's answers (a whole number >= 1), "
            f"found {text[:40]!r}",
        )
    return int(text)


def _values(
    numbered_line: tuple[int, str] | None, count: int, source: str, count_line: int
) -> list[int]:
    """Return the `count` comma-separated whole numbers of a block's next line."""
    if numbered_line is None:
        raise DatasetError(
            source,
            count_line,
            "the file ends inside the student's block that starts here",
        )
    number, text = numbered_line
    values = [value.strip() for value in text.removesuffix(",").split(",")]
    if values == [""]:
        values = []
    if len(values) != count:
        raise DatasetError(
            source,
            number,
            f"expected {count} values, as line {count_line} says, found {len(values)}",
        )
    for value in values:
        if not (value.isascii() and value.isdigit()):
            raise DatasetError(source, number, f"{value[:40]!r} is not a whole number")
    return [int(value) for value in values]
