"""Handle one inbound SwiftChat message: load, decide, commit, retry on conflict."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from tutorlane.commands.ports import RecordedHistory, SessionStore, VersionConflict
from tutorlane.domain.course import Course
from tutorlane.domain.messages import Inbound, Reply
from tutorlane.domain.session import (
    DEFAULT_INACTIVITY_SECONDS,
    Session,
    decide,
    restore_session,
)

logger = logging.getLogger(__name__)

MAX_CONFLICT_RETRIES = 50


class TooMuchContention(RuntimeError):
    """A student's session kept changing under us; SwiftChat will retry the message."""


class HistoryUnavailable(RuntimeError):
    """A student has no session and the event store cannot say whether they had one.

    Answering anyway could start a second history under sequence numbers the event
    store already holds, so the message waits for SwiftChat's retry instead.
    """


@dataclass(frozen=True, slots=True)
class Handled:
    """The outcome of one message: the reply to send now, or None for a redelivery."""

    student: str
    reply: Reply | None
    entry_id: str | None


class MessageHandler:
    """The fast lane's command handler."""

    def __init__(
        self,
        store: SessionStore,
        course: Course,
        pseudonymise: Callable[[str], str],
        clock: Callable[[], float] = time.time,
        inactivity_seconds: float = DEFAULT_INACTIVITY_SECONDS,
        recorded: RecordedHistory | None = None,
    ) -> None:
        self.store = store
        self.course = course
        self.pseudonymise = pseudonymise
        self.clock = clock
        self.inactivity_seconds = inactivity_seconds
        self.recorded = recorded

    async def handle(self, phone: str, message: Inbound) -> Handled:
        """Apply a message exactly once and return the reply it produced."""
        student = self.pseudonymise(phone)
        for attempt in range(MAX_CONFLICT_RETRIES):
            session = await self.store.load(student)
            if session.version == 0:
                session = await self._restore_lost_session(student, session)
            decision = decide(
                session,
                message,
                self.course,
                student,
                self.clock(),
                self.inactivity_seconds,
            )
            if decision.reply is None:
                return Handled(student, None, None)

            try:
                entry_id = await self.store.commit(
                    student,
                    session.version,
                    decision.session,
                    phone,
                    decision.reply,
                    decision.events,
                )
            except VersionConflict:
                # Another message of this student won the race: redo on fresh
                # state, after a short random pause so that a crowd spreads out.
                logger.debug("version conflict for student=%s, retrying", student)
                await asyncio.sleep(random.uniform(0, 0.002) * min(attempt, 10))  # noqa: S311
                continue
            return Handled(student, decision.reply, entry_id)

        raise TooMuchContention(
            f"session of {student} changed {MAX_CONFLICT_RETRIES} times while we tried"
        )

    async def _restore_lost_session(self, student: str, session: Session) -> Session:
        """Return the session Redis lost, rebuilt from the student's recorded events.

        A session is new for a student never seen, and for one whose session Redis
        lost: then the event store has their events, and the student carries on
        where they were, with new events numbered after the recorded ones.
        """
        if self.recorded is None:
            return session
        try:
            history = await self.recorded.history(student)
        except Exception as ex:
            logger.warning(
                "no session for %s and the event store is unreachable (%s)",
                student,
                type(ex).__name__,
            )
            raise HistoryUnavailable(
                "this student's history cannot be read right now; retry later"
            ) from ex
        if not history:
            return session
        logger.info("restored the session of %s from %d events", student, len(history))
        return restore_session(history, self.course)
