"""A small course for domain tests, independent of the shipped content."""

from __future__ import annotations

import pytest

from tutorlane.domain.course import Course, parse_course
from tutorlane.tests.courses import TINY_COURSE


@pytest.fixture
def course() -> Course:
    return parse_course(TINY_COURSE, "tiny.yaml")
