"""The live runner: follows the event log and keeps each projection's tables current.

Each batch of a projection is applied in one transaction that also moves its position,
so across crashes every event is applied exactly once. The runner reads no further
than the head of the log it saw before reading (its high-water mark): the event store
makes notification ids visible in order (see adapters/event_store.py), so no event
can commit later below that mark.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from tutorlane.projections.base import (
    LoggedEvent,
    Projection,
    ProjectionState,
    RowStore,
    TableDifference,
)

logger = logging.getLogger(__name__)

LIVE_BATCH = 1000
IDLE_SECONDS = 0.2
RETRY = 2.0


class EventFeed(Protocol):
    """The event store's log, as projections read it."""

    def head(self) -> int:
        """Return the id of the last event recorded (0 when none)."""
        ...

    def read(self, after: int, up_to: int, limit: int) -> list[LoggedEvent]:
        """Return up to `limit` events with after < id <= up_to, in id order."""
        ...

    def count(self, after: int, up_to: int) -> int:
        """Return how many events have after < id <= up_to."""
        ...


class LockedProjection(Protocol):
    """A projection's bookkeeping row, locked by the current transaction."""

    state: ProjectionState

    def rows(self, tables: Sequence[str], generation: int) -> RowStore:
        """Return one generation of the projection's tables, in this transaction."""
        ...

    def update(self, **values: Any) -> None:
        """Change fields of the bookkeeping row."""
        ...

    def differences(self, table: str, generation: int, other: int) -> TableDifference:
        """Compare a table's rows in two generations, in this transaction."""
        ...


class ProjectionTables(Protocol):
    """Where projections keep their rows and positions."""

    def states(self) -> dict[str, ProjectionState]:
        """Return every projection's bookkeeping row, by name."""
        ...

    def locked(self, name: str) -> AbstractContextManager[LockedProjection]:
        """Open a transaction holding the projection's row; commit at the end."""
        ...

    def create_generation(self, tables: Sequence[str], generation: int) -> None:
        """Create empty tables for a generation."""
        ...

    def publish(self, tables: Sequence[str], generation: int) -> None:
        """Point the tables' views at a generation."""
        ...

    def drop_other_generations(self, tables: Sequence[str], keep: set[int]) -> None:
        """Drop every generation of these tables but those in `keep`."""
        ...

    def drop_older_generations(self, tables: Sequence[str], live: int) -> None:
        """Drop the generations of these tables older than the live one."""
        ...


AfterCommit = Callable[[Projection, Sequence[LoggedEvent]], None]


class ProjectionRunner:
    """Applies new events to every projection whose live tables it can keep."""

    def __init__(
        self,
        projections: Sequence[Projection],
        tables: ProjectionTables,
        feed: EventFeed,
        *,
        batch_size: int = LIVE_BATCH,
        after_commit: AfterCommit | None = None,
        reload_parameters: Callable[[], None] | None = None,
    ) -> None:
        self.projections = projections
        self.tables = tables
        self.feed = feed
        self.batch_size = batch_size
        self.after_commit = after_commit
        self.reload_parameters = reload_parameters
        self._warned: set[tuple[str, str]] = set()
        self._reloaded_for: set[str] = set()

    def prepare(self) -> None:
        """Point every view at its live generation and drop older generations.

        Repairs what a process that died between a rebuild's swap and its tidying
        left behind.
        """
        states = self.tables.states()
        for projection in self.projections:
            state = states.get(projection.name)
            if state is None:
                continue
            self.publish_live(projection, state.generation)
            # NOTE: only older ones: a rebuild may claim and create a newer one
            # at any moment, unseen by this snapshot of the states. A newer one
            # an interrupted rebuild left is resumed or made afresh by the next.
            self.tables.drop_older_generations(projection.tables, state.generation)

    def publish_live(self, projection: Projection, generation: int) -> None:
        """Point the views at the live generation, even if a rebuild swaps now."""
        while True:
            self.tables.publish(projection.tables, generation)
            # NOTE: a swap that committed before this publish but published its
            # own views earlier was just undone: look again and follow it.
            live = self.tables.states()[projection.name].generation
            if live == generation:
                return
            generation = live

    def run_once(self) -> int:
        """Apply one batch of new events; return how many events it read."""
        states = self.tables.states()
        active = [
            (projection, states[projection.name])
            for projection in self.projections
            if self.can_keep(projection, states.get(projection.name))
        ]
        if not active:
            return 0

        head = self.feed.head()
        low = min(state.position for _, state in active)
        if low >= head:
            return 0
        batch = self.feed.read(low, head, self.batch_size)
        if not batch:
            return 0

        for projection, state in active:
            self.apply(projection, state, batch)
        return len(batch)

    def apply(
        self, projection: Projection, seen: ProjectionState, batch: list[LoggedEvent]
    ) -> None:
        """Apply the events of `batch` this projection has not seen; move it on."""
        last = batch[-1].notification_id
        if seen.position >= last:
            return
        new = [event for event in batch if event.notification_id > seen.position]
        with self.tables.locked(projection.name) as locked:
            now = locked.state
            if (now.generation, now.position) != (seen.generation, seen.position):
                # A rebuild swapped in, or another runner went first: look again.
                return
            projection.apply(new, locked.rows(projection.tables, now.generation))
            locked.update(position=last)
        if self.after_commit is not None:
            self.after_commit(projection, new)

    def can_keep(self, projection: Projection, state: ProjectionState | None) -> bool:
        """Tell whether the live tables are this code's to update."""
        if state is None:
            self.warn_once(
                projection,
                "missing",
                "projection %s is not in the database; run `tutorlane migrate`",
            )
            return False
        fingerprint = projection.fingerprint()
        if state.version == projection.version and state.fingerprint == fingerprint:
            return True
        if (
            state.version == projection.version
            and self.reload_parameters is not None
            and state.fingerprint not in self._reloaded_for
        ):
            # A rebuild with newly fitted parameters swapped in under this runner:
            # read the parameters again, once per fingerprint seen, and follow it.
            self._reloaded_for.add(state.fingerprint)
            self.reload_parameters()
            if state.fingerprint == projection.fingerprint():
                logger.info("projection %s: took up new parameters", projection.name)
                return True
        if state.position == 0:
            # Nothing applied yet: the empty tables are as good as this version's.
            with self.tables.locked(projection.name) as locked:
                if locked.state.position == 0:
                    locked.update(version=projection.version, fingerprint=fingerprint)
                    return True
            return False
        self.warn_once(
            projection,
            "stale",
            "projection %s was built by another version or with other parameters "
            "or courses (is TUTORLANE_FLOWS the same as where it was built?); not "
            "updating it until `tutorlane projections rebuild` swaps in a new one",
        )
        return False

    def warn_once(self, projection: Projection, reason: str, message: str) -> None:
        """Log a problem with a projection the first time it is seen."""
        if (projection.name, reason) not in self._warned:
            self._warned.add((projection.name, reason))
            logger.warning(message, projection.name)

    def run(
        self,
        stop: threading.Event,
        idle_seconds: float = IDLE_SECONDS,
        drain_seconds: float = 0.0,
    ) -> None:
        """Keep the projections current until `stop` is set.

        With `drain_seconds`, once stopped it goes on for up to that long while
        there are events left to apply.
        """
        self.prepare()
        self.follow(stop, idle_seconds)
        self.drain(drain_seconds)

    def drain(self, seconds: float) -> None:
        """Apply what events are left, for up to `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.run_once():
            pass

    def follow(self, stop: threading.Event, idle_seconds: float) -> None:
        """Apply batches as events arrive until `stop` is set."""
        while not stop.is_set():
            try:
                applied = self.run_once()
            except Exception:
                # NOTE: the database may be away for a while; nothing was committed
                # of the failed batch, so trying it again later is safe.
                logger.exception("projection batch failed; retrying in %ss", RETRY)
                stop.wait(RETRY)
                continue
            if applied == 0:
                stop.wait(idle_seconds)
