"""The slow lane's agents, run after each committed batch of next steps.

The Navigator writes each student's fresh plan into their Redis session (checked
against the session's version, so that a stale plan is dropped); the Analyst is
asked about triggering events and its answer is recorded as an event. Both run only
behind the live runner, never in a rebuild: a rebuild reads recorded analyses and
asks no one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError

from tutorlane.adapters.codecs import (
    CorruptRecord,
    event_from_json,
    event_to_json,
    event_topic,
)
from tutorlane.adapters.event_store import EventStore
from tutorlane.commands.analyse_student import AnalyseStudent
from tutorlane.commands.plan_next_steps import PlanNextSteps, PlanRequest
from tutorlane.commands.ports import NewRecord
from tutorlane.domain.analysis import (
    Trigger,
    find_trigger,
    may_trigger,
    streak_may_go_further_back,
)
from tutorlane.domain.events import (
    AnalysisRecorded,
    AnswerSubmitted,
    Event,
)
from tutorlane.projections.base import LoggedEvent, Projection
from tutorlane.projections.next_steps import NextStepsProjection, StudentProgress

logger = logging.getLogger(__name__)

# How long the runner waits for plans to reach Redis before its next batch.
PLAN_WAIT_SECONDS = 5.0
# How many of a student's events before a batch the Analyst's triggers look at: the
# prompt shows the last few answers on a skill, and a wrong streak longer than this
# has long been debounced. (A streak as long as the window is read in whole.)
HISTORY_EVENTS = 24


def analysis_stream(student: str) -> str:
    """Return the name of the stream a student's analyses are recorded in."""
    return f"analysis:{student}"


class StudentAgents:
    """What happens after the next steps of some students changed."""

    def __init__(
        self,
        store: EventStore,
        loop: asyncio.AbstractEventLoop,
        planners: Mapping[str, PlanNextSteps],
        analysis: AnalyseStudent | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.loop = loop
        self.planners = planners
        self.analysis = analysis
        self.clock = clock
        self.pending: set[concurrent.futures.Future[None]] = set()

    def after_commit(
        self, projection: Projection, events: Sequence[LoggedEvent]
    ) -> None:
        """React to a committed batch of the next_steps projection."""
        if not isinstance(projection, NextStepsProjection):
            return
        # NOTE: the students' rows as the projection just committed them; reading
        # them back from the database was an eighth of the runner's time.
        progress = projection.last_applied
        if not progress:
            return

        self.write_plans(progress)
        if self.analysis is not None:
            self.consider_analyses([logged.event for logged in events], progress)

    def write_plans(self, progress: Mapping[str, StudentProgress]) -> None:
        """Write each student's plan into their session, and wait for Redis."""
        now = self.clock()
        requests: dict[str, list[PlanRequest]] = {}
        for student, state in progress.items():
            if state.course in self.planners:
                requests.setdefault(state.course, []).append(
                    PlanRequest(
                        student,
                        state.knowledge,
                        state.last_seen,
                        state.recent,
                        state.last_seq,
                        now,
                    )
                )
        if not requests:
            return
        calls = [
            self.planners[course].plan_many(asks) for course, asks in requests.items()
        ]
        done = asyncio.run_coroutine_threadsafe(_gather(calls), self.loop)
        try:
            done.result(timeout=PLAN_WAIT_SECONDS)
        except Exception:
            # NOTE: the fast lane falls back on the course graph; nothing waits.
            logger.warning("plans not written back to Redis", exc_info=True)

    def consider_analyses(
        self, events: Sequence[Event], progress: Mapping[str, StudentProgress]
    ) -> None:
        """Ask the Analyst in the background about each event that is a trigger."""
        candidates = [
            event
            for event in events
            if event.student in progress
            and may_trigger(event, progress[event.student].knowledge)
        ]
        first_seq: dict[str, int] = {}
        for event in candidates:
            first_seq[event.student] = min(
                first_seq.get(event.student, event.seq), event.seq
            )
        # One bounded read for the batch: a whole history per wrong answer made the
        # runner slow down as students kept answering.
        histories = self.recent_answers(
            {student: seq - HISTORY_EVENTS for student, seq in first_seq.items()}
        )
        # A wrong streak that fills the window is counted on the whole history: it
        # is rare (a student stuck on a skill), and counted within the window it
        # would trigger on every answer, or never again.
        longer = {
            event.student
            for event in candidates
            if isinstance(event, AnswerSubmitted)
            and first_seq[event.student] > HISTORY_EVENTS
            and streak_may_go_further_back(event, histories[event.student])
        }
        if longer:
            histories |= self.recent_answers(dict.fromkeys(longer, 0))

        for event in candidates:
            state = progress[event.student]
            answers = histories[event.student]
            trigger = find_trigger(event, answers, state.knowledge)
            if trigger is None:
                continue
            future = asyncio.run_coroutine_threadsafe(
                self.analyse(trigger, answers, state), self.loop
            )
            self.pending.add(future)
            future.add_done_callback(self.pending.discard)

    def recent_answers(
        self, after: Mapping[str, int]
    ) -> dict[str, list[AnswerSubmitted]]:
        """Return each student's recorded answers after a seq (the evidence)."""
        answers: dict[str, list[AnswerSubmitted]] = {}
        recorded = self.store.events_after(
            {student: max(seq, 0) for student, seq in after.items()}
        )
        for student, events in recorded.items():
            answers[student] = []
            for event in events:
                try:
                    read = event_from_json(event.state)
                except CorruptRecord:
                    continue  # the restore path warns about it; it is no evidence
                if isinstance(read, AnswerSubmitted):
                    answers[student].append(read)
        return answers

    async def analyse(
        self, trigger: Trigger, answers: list[AnswerSubmitted], state: StudentProgress
    ) -> None:
        """Run the Analyst on one trigger and record what it found."""
        assert self.analysis is not None
        try:
            analysed = await self.analysis.analyse(trigger, answers, state.knowledge)
            if analysed.event is not None:
                await asyncio.to_thread(record_analysis, self.store, analysed.event)
        except Exception:
            logger.exception("analysis of student=%s failed", trigger.event.student)

    def wait_for_analyses(self, seconds: float) -> None:
        """Wait for the analyses in flight, as a stopping process should."""
        concurrent.futures.wait(list(self.pending), timeout=seconds)


async def _gather(calls: Sequence[Coroutine[Any, Any, Any]]) -> None:
    await asyncio.gather(*calls)


def record_analysis(store: EventStore, analysis: AnalysisRecorded) -> None:
    """Append an analysis to its student's analysis stream, at the next number."""
    stream = analysis_stream(analysis.student)
    for _ in range(3):
        seq = store.last_seqs([stream])[stream] + 1
        record = NewRecord(stream, seq, event_topic(analysis), event_to_json(analysis))
        try:
            store.append([record])
            return
        except IntegrityError:
            continue  # another process took the number first
    raise RuntimeError(f"could not number an analysis in {stream} after 3 tries")
