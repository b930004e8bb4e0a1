"""Course files on disk: YAML read safely, then checked by the domain's parser."""

from __future__ import annotations

from pathlib import Path

import yaml

from tutorlane.domain.course import Course, CourseError, parse_course

SHIPPED_FLOWS = Path(__file__).resolve().parent.parent / "flows"


def load_course_file(path: Path) -> Course:
    """Read one course file, or raise `CourseError` naming the file and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as ex:
        raise CourseError(str(path), "file", f"cannot be read: {ex.strerror}") from None
    except UnicodeDecodeError:
        raise CourseError(str(path), "file", "is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as ex:
        mark = getattr(ex, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "file"
        problem = getattr(ex, "problem", None) or str(ex)
        raise CourseError(str(path), where, f"is not valid YAML: {problem}") from None
    return parse_course(data, str(path))


def load_courses(folder: Path) -> dict[str, Course]:
    """Read every `*.yaml` course in `folder`, keyed by course id."""
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise CourseError(str(folder), "folder", "holds no *.yaml course files")
    courses: dict[str, Course] = {}
    for path in files:
        course = load_course_file(path)
        if course.id in courses:
            raise CourseError(str(path), "top level", f"course {course.id!r} repeated")
        courses[course.id] = course
    return courses
