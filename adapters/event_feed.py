"""The event store read back as domain events: the log, and one student's history."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from tutorlane.adapters.codecs import CorruptRecord, event_from_json
from tutorlane.adapters.event_store import EventStore, RecordedEvent
from tutorlane.domain.events import Event
from tutorlane.projections.base import LoggedEvent

logger = logging.getLogger(__name__)


class EventStoreFeed:
    """Reads the log of an `EventStore` and decodes each event, upcasting old ones."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def head(self) -> int:
        """Return the id of the last event recorded (0 when none)."""
        return self.store.max_notification_id()

    def read(self, after: int, up_to: int, limit: int) -> list[LoggedEvent]:
        """Return up to `limit` events with after < id <= up_to, in id order."""
        logged = []
        for recorded in self.store.read(after, limit, up_to=up_to):
            try:
                event = event_from_json(recorded.state)
            except CorruptRecord as ex:
                raise CorruptRecord(
                    f"event {recorded.notification_id} of the log cannot be read "
                    f"({ex}); projections stop there until the code can read it"
                ) from None
            logged.append(LoggedEvent(recorded.notification_id, event))
        return logged

    def count(self, after: int, up_to: int) -> int:
        """Return how many events have after < id <= up_to."""
        return self.store.count(after, up_to)


class EventStoreHistory:
    """The fast lane's view of the event store: one student's events, to restore.

    Opens the store on first use and again after a failure, so that a database
    that was away when the webhook started is used once it is back.
    """

    def __init__(self, open_store: Callable[[], EventStore]) -> None:
        self.open_store = open_store
        self.store: EventStore | None = None
        self.opening = threading.Lock()

    async def history(self, student: str) -> list[Event]:
        """Return the student's recorded events in sequence order ([] if none)."""
        return await asyncio.to_thread(self.read_history, student)

    def read_history(self, student: str) -> list[Event]:
        """Read the student's events (blocking)."""
        with self.opening:
            if self.store is None:
                self.store = self.open_store()
        events = []
        for recorded in self.store.events_of(student):
            try:
                events.append(event_from_json(recorded.state))
            except CorruptRecord:
                # NOTE: an event this code cannot read still took its seq: keep the
                # number so that new events follow it, and restore around it.
                logger.warning(
                    "event %d of %s cannot be read; restoring without it",
                    recorded.notification_id,
                    student,
                )
                events.append(_placeholder(recorded))
        return events

    def close(self) -> None:
        """Close the store, if it was opened."""
        if self.store is not None:
            self.store.close()


def _placeholder(recorded: RecordedEvent) -> Event:
    """Stand in for an unreadable event: its student and seq, nothing else."""
    return Event(
        event_id="",
        student=recorded.student,
        seq=recorded.seq,
        message_id="",
        occurred_at=0.0,
        course="",
    )
