"""Which Analyst the settings give, and that the log says so."""

from __future__ import annotations

import logging

import pytest

from tutorlane.adapters.anthropic_analyst import AnthropicAnalyst
from tutorlane.adapters.rule_based_analyst import RuleBasedAnalyst
from tutorlane.bootstrap import build_analysis
from tutorlane.domain.course import Course
from tutorlane.entrypoints.settings import Settings


@pytest.fixture(autouse=True)
def no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


def test_without_a_key_the_rule_based_stand_in_is_used_and_named(
    course: Course, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    analysis = build_analysis(Settings(), course)

    assert analysis is not None and isinstance(analysis.analyst, RuleBasedAnalyst)
    assert "rule-based stand-in" in caplog.text


def test_without_a_key_and_without_the_stand_in_the_analyst_is_off(
    course: Course, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    assert build_analysis(Settings(analyst_stand_in=False), course) is None
    assert caplog.text.count("Analyst: off") == 1


def test_with_a_key_the_messages_api_is_asked_with_the_settings(
    course: Course, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-secret")
    settings = Settings(
        analyst_model="claude-test",
        anthropic_base_url="http://127.0.0.1:9",
        analyst_calls_per_student_per_day=7,
    )

    analysis = build_analysis(settings, course)

    assert analysis is not None and isinstance(analysis.analyst, AnthropicAnalyst)
    assert analysis.analyst.model == "claude-test"
    assert str(analysis.analyst.client.base_url).startswith("http://127.0.0.1:9")
    assert analysis.budget.limits.per_student_per_day == 7
    assert "sk-test-secret" not in caplog.text
