"""The read side's processes: the live projection runner, status, and rebuilds."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from tutorlane.adapters.event_feed import EventStoreFeed
from tutorlane.adapters.event_store import (
    EventStore,
    create_event_store_engine,
    open_event_store,
)
from tutorlane.adapters.flow_files import load_courses
from tutorlane.adapters.sql_projections import SQLProjectionStore
from tutorlane.entrypoints.settings import Settings
from tutorlane.projections.base import Projection, ProjectionState
from tutorlane.projections.interaction_log import InteractionLogProjection
from tutorlane.projections.knowledge_state import (
    KnowledgeStateProjection,
    SkillParameters,
)
from tutorlane.projections.rebuild import Progress, ProjectionRebuild, RebuildReport
from tutorlane.projections.runner import LIVE_BATCH, ProjectionRunner

logger = logging.getLogger(__name__)


class UnknownProjection(LookupError):
    """A projection name that tutorlane does not have."""


@dataclass
class ReadSide:
    """Everything the projections need, opened from settings."""

    store: EventStore
    feed: EventStoreFeed
    tables: SQLProjectionStore
    projections: list[Projection]

    def pick(self, names: Sequence[str]) -> list[Projection]:
        """Return the projections called `names` (all of them when none is named)."""
        by_name = {projection.name: projection for projection in self.projections}
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise UnknownProjection(
                f"no projection called {', '.join(unknown)}; "
                f"there are {', '.join(by_name)}"
            )
        return [by_name[name] for name in names] if names else self.projections

    def close(self) -> None:
        """Close the database connections."""
        self.tables.close()
        self.store.close()


def build_projections(settings: Settings) -> list[Projection]:
    """Return every projection, configured from the course files."""
    courses = load_courses(settings.flows)
    return [
        InteractionLogProjection(),
        KnowledgeStateProjection(SkillParameters(courses)),
    ]


def open_read_side(settings: Settings) -> ReadSide:
    """Migrate the database if needed and open the projections on it."""
    store = open_event_store(settings.event_store_url)
    tables = SQLProjectionStore(create_event_store_engine(settings.event_store_url))
    return ReadSide(store, EventStoreFeed(store), tables, build_projections(settings))


def process_owner() -> str:
    """Return a name for this process, as leases record it."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def run_projections(
    settings: Settings, stop: threading.Event, batch_size: int = LIVE_BATCH
) -> None:
    """Keep every projection current until `stop` is set (blocking)."""
    read_side = open_read_side(settings)
    try:
        runner = ProjectionRunner(
            read_side.projections, read_side.tables, read_side.feed
        )
        logger.info(
            "projection runner started: %s",
            ", ".join(projection.name for projection in read_side.projections),
        )
        runner.run(stop)
    finally:
        read_side.close()


def rebuild_projection(
    read_side: ReadSide, projection: Projection, progress: Progress | None = None
) -> RebuildReport:
    """Rebuild one projection beside the live one and swap it in."""
    rebuild = ProjectionRebuild(
        projection, read_side.tables, read_side.feed, process_owner()
    )
    return rebuild.run(progress)


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """Where one projection stands against the log."""

    name: str
    version: int
    position: int
    head: int
    lag: int
    rows: int
    note: str


def projection_status(read_side: ReadSide) -> list[ProjectionStatus]:
    """Return where each projection stands: position, lag in events, rows."""
    states = read_side.tables.states()
    head = read_side.feed.head()
    statuses = []
    for projection in read_side.projections:
        state = states.get(projection.name)
        if state is None:
            statuses.append(
                ProjectionStatus(projection.name, 0, 0, head, 0, 0, "run migrate")
            )
            continue
        rows = sum(read_side.tables.count_rows(table) for table in projection.tables)
        statuses.append(
            ProjectionStatus(
                projection.name,
                state.version,
                state.position,
                head,
                read_side.feed.count(state.position, head),
                rows,
                status_note(projection, state),
            )
        )
    return statuses


def status_note(projection: Projection, state: ProjectionState) -> str:
    """Say what an operator should know about a projection's state."""
    notes = []
    if state.version != projection.version:
        notes.append(f"code is at version {projection.version}: rebuild")
    elif state.position and state.fingerprint != projection.fingerprint():
        notes.append("parameters changed: rebuild")
    if state.rebuild_generation is not None:
        who = state.rebuild_owner or "nobody (interrupted; rebuild resumes)"
        notes.append(f"rebuild at event {state.rebuild_position} by {who}")
    return "; ".join(notes)
