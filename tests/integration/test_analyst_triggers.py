"""The Analyst's triggers behind the live runner, on a real event store (SQLite)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tutorlane.adapters.codecs import event_from_json
from tutorlane.adapters.event_store import EventStore, open_event_store
from tutorlane.adapters.flow_files import SHIPPED_FLOWS, load_course_file
from tutorlane.adapters.rule_based_analyst import RuleBasedAnalyst
from tutorlane.commands.analyse_student import AnalyseStudent
from tutorlane.domain.analysis import AnalystBudget, AnalystLimits
from tutorlane.domain.events import Event
from tutorlane.domain.knowledge import SkillKnowledge
from tutorlane.entrypoints.agents import HISTORY_EVENTS, StudentAgents, analysis_stream
from tutorlane.projections.next_steps import StudentProgress
from tutorlane.tests.history import COURSE, answer, hint, record

STUDENT = "pseudo-stuck"
SKILL = "place-value"
UNLIMITED = AnalystLimits(
    per_student_per_day=10_000, debounce_seconds=0, per_minute=10_000
)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    threading.Thread(target=running.run_forever, daemon=True).start()
    yield running
    running.call_soon_threadsafe(running.stop)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    opened = open_event_store(f"sqlite:///{tmp_path / 'events.db'}")
    yield opened
    opened.close()


def analysed_seqs(store: EventStore) -> list[int]:
    """Return the seq of the answer each recorded analysis was made for."""
    stream = analysis_stream(STUDENT)
    recorded = store.events_after({stream: 0})[stream]
    return sorted(event_from_json(event.state).seq for event in recorded)


@pytest.mark.parametrize("hint_every", [0, 5])
def test_a_long_wrong_streak_triggers_every_third_wrong_answer_as_it_goes_on(
    store: EventStore, loop: asyncio.AbstractEventLoop, hint_every: int
) -> None:
    course = load_course_file(SHIPPED_FLOWS / "maths-primary.yaml")
    analysis = AnalyseStudent(RuleBasedAnalyst(), course, AnalystBudget(UNLIMITED))
    agents = StudentAgents(store, loop, {}, analysis)
    expected, wrong = [], 0

    # One event per batch, as at a trickle: a streak three times the window long.
    for seq in range(1, 3 * HISTORY_EVENTS + 8):
        event: Event
        if hint_every and seq % hint_every == 0:
            event = hint(STUDENT, seq, skill=SKILL)
        else:
            event = answer(STUDENT, seq, correct=False, skill=SKILL)
            wrong += 1
            if wrong % 3 == 0:
                expected.append(seq)
        record(store, [event])
        knowledge = {SKILL: SkillKnowledge(SKILL, 0.1, attempts=wrong, correct=0)}
        progress = StudentProgress(STUDENT, COURSE, "pv-1", seq, 0.0, knowledge)
        agents.consider_analyses([event], {STUDENT: progress})
        agents.wait_for_analyses(10)

    assert analysed_seqs(store) == expected
