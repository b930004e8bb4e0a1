"""The event store's log as projections read it: domain events with their ids."""

from __future__ import annotations

from tutorlane.adapters.codecs import CorruptRecord, event_from_json
from tutorlane.adapters.event_store import EventStore
from tutorlane.projections.base import LoggedEvent


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
