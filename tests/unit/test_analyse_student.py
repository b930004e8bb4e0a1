"""The Analyst's use case with a scripted analyst: budget, checks, the event."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tutorlane.adapters.flow_files import SHIPPED_FLOWS, load_course_file
from tutorlane.commands.analyse_student import AnalyseStudent
from tutorlane.commands.ports import AnalystUnavailable
from tutorlane.domain.analysis import (
    AnalysisRequest,
    AnalystBudget,
    AnalystLimits,
    Trigger,
    TriggerKind,
)
from tutorlane.domain.events import AnswerSubmitted, analysis_event_id

COURSE = load_course_file(SHIPPED_FLOWS / "maths-primary.yaml")
STUDENT = "pseudo-7f3a"
NOW = 1_700_000_000.0
GOOD = {"misconception": "m", "evidence": "e", "remediation_node": "sub-r"}


class ScriptedAnalyst:
    """An analyst that answers from a list; an exception in it is raised."""

    model = "scripted"

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[AnalysisRequest] = []

    async def analyse(self, request: AnalysisRequest) -> str:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def wrong_answers(first_seq: int = 1) -> list[AnswerSubmitted]:
    return [
        AnswerSubmitted(
            event_id=f"e-{seq}",
            student=STUDENT,
            seq=seq,
            message_id=f"m-{seq}",
            occurred_at=NOW,
            course=COURSE.id,
            node="sub-3",
            skill="subtraction",
            answer="327",
            correct=False,
            attempt=1,
            seconds_taken=2.0,
        )
        for seq in range(first_seq, first_seq + 3)
    ]


def trigger_of(answers: list[AnswerSubmitted]) -> Trigger:
    return Trigger(TriggerKind.WRONG_STREAK, "subtraction", answers[-1])


def use_case(analyst: ScriptedAnalyst, clock: list[float]) -> AnalyseStudent:
    limits = AnalystLimits(per_student_per_day=5, debounce_seconds=600, per_minute=10)
    return AnalyseStudent(analyst, COURSE, AnalystBudget(limits), lambda: clock[0])


async def test_an_accepted_answer_becomes_the_event_to_record() -> None:
    analyst = ScriptedAnalyst(json.dumps(GOOD))
    answers = wrong_answers()

    analysed = await use_case(analyst, [NOW]).analyse(trigger_of(answers), answers, {})

    event = analysed.event
    assert event is not None and event.event_id == analysis_event_id("e-3")
    assert (event.remediation_node, event.model, event.occurred_at) == (
        "sub-r",
        "scripted",
        NOW,
    )
    assert [a.answer for a in analyst.requests[0].answers] == ["327"] * 3


async def test_a_second_trigger_moments_later_does_not_call_the_analyst() -> None:
    analyst = ScriptedAnalyst(json.dumps(GOOD), json.dumps(GOOD))
    clock = [NOW]
    analyse = use_case(analyst, clock)
    first, second = wrong_answers(1), wrong_answers(4)
    await analyse.analyse(trigger_of(first), first, {})

    clock[0] += 60
    analysed = await analyse.analyse(trigger_of(second), first + second, {})

    assert analysed.event is None and "debounced" in analysed.skipped
    assert len(analyst.requests) == 1


async def test_an_unavailable_analyst_records_nothing_and_counts_the_try() -> None:
    analyst = ScriptedAnalyst(AnalystUnavailable("HTTP 529"))
    analyse = use_case(analyst, [NOW])
    answers = wrong_answers()

    analysed = await analyse.analyse(trigger_of(answers), answers, {})
    again = await analyse.analyse(trigger_of(answers), answers, {})

    assert analysed.event is None and "HTTP 529" in analysed.skipped
    assert "debounced" in again.skipped


async def test_an_answer_outside_the_schema_records_nothing() -> None:
    analyst = ScriptedAnalyst("The student confuses borrowing. Try sub-r.")
    answers = wrong_answers()

    analysed = await use_case(analyst, [NOW]).analyse(trigger_of(answers), answers, {})

    assert analysed.event is None and analysed.skipped.startswith("rejected")


async def test_a_course_this_process_lacks_is_skipped_without_spending_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    analyst = ScriptedAnalyst(json.dumps(GOOD))
    analyse = use_case(analyst, [NOW])
    elsewhere = [replace(answer, course="another-course") for answer in wrong_answers()]

    skipped = [
        await analyse.analyse(trigger_of(elsewhere), elsewhere, {}) for _ in range(2)
    ]
    answers = wrong_answers()
    analysed = await analyse.analyse(trigger_of(answers), answers, {})

    assert [outcome.event for outcome in skipped] == [None, None]
    assert "another-course" in skipped[0].skipped
    assert len(analyst.requests) == 1, "only the course it has was asked about"
    assert analysed.event is not None, "the budget was not spent on the skipped ones"
    warnings = [r for r in caplog.records if "another-course" in r.getMessage()]
    assert len(warnings) == 1, "said once, not at every trigger"
