"""The read side's processes: the live projection runner, status, and rebuilds."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tutorlane.adapters.bkt_parameters import load_parameters
from tutorlane.adapters.event_feed import EventStoreFeed
from tutorlane.adapters.event_store import (
    EventStore,
    create_event_store_engine,
    open_event_store,
)
from tutorlane.adapters.flow_files import load_courses
from tutorlane.adapters.redis_sessions import RedisClient, RedisSessionStore
from tutorlane.adapters.sql_projections import SQLProjectionStore
from tutorlane.commands.plan_next_steps import PlanNextSteps
from tutorlane.domain.course import BKTParameters
from tutorlane.domain.navigator import Navigator
from tutorlane.entrypoints.agents import StudentAgents
from tutorlane.entrypoints.settings import Settings
from tutorlane.projections.analyst_insights import AnalystInsightsProjection
from tutorlane.projections.base import Projection, ProjectionState
from tutorlane.projections.interaction_log import InteractionLogProjection
from tutorlane.projections.knowledge_state import (
    KnowledgeStateProjection,
    SkillParameters,
)
from tutorlane.projections.next_steps import NEXT_STEPS, NextStepsProjection
from tutorlane.projections.rebuild import (
    ProjectionRebuild,
)
from tutorlane.projections.runner import LIVE_BATCH, ProjectionRunner

logger = logging.getLogger(__name__)

# How long a stopping runner lets the Analyst's calls in flight finish.
AGENTS_DRAIN_SECONDS = 10.0


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

    def reload_parameters(self) -> None:
        """Read the fitted BKT parameters again (`replay fit` may have changed them)."""
        fitted = load_parameters(self.tables.engine)
        for projection in self.projections:
            if isinstance(projection, KnowledgeStateProjection):
                projection.parameters.fitted = dict(fitted)

    def close(self) -> None:
        """Close the database connections."""
        self.tables.close()
        self.store.close()


def build_projections(
    settings: Settings, fitted: Mapping[str, BKTParameters] | None = None
) -> list[Projection]:
    """Return every projection, configured from the course files.

    Knowledge tracing uses the `fitted` parameters of a skill where there are some
    (`tutorlane replay fit`), the course file's otherwise.
    """
    courses = load_courses(settings.flows)
    parameters = SkillParameters(courses, fitted)
    return [
        InteractionLogProjection(),
        KnowledgeStateProjection(parameters),
        NextStepsProjection(courses, parameters),
        AnalystInsightsProjection(),
    ]


def open_read_side(settings: Settings) -> ReadSide:
    """Migrate the database if needed and open the projections on it."""
    store = open_event_store(settings.event_store_url)
    engine = create_event_store_engine(settings.event_store_url)
    projections = build_projections(settings, load_parameters(engine))
    return ReadSide(
        store, EventStoreFeed(store), SQLProjectionStore(engine), projections
    )


def process_owner() -> str:
    """Return a name for this process, as leases record it."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def run_projections(
    settings: Settings,
    stop: threading.Event,
    batch_size: int = LIVE_BATCH,
    redis: RedisClient | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    drain_seconds: float = 0.0,
    names: Sequence[str] = (),
) -> None:
    """Keep the projections called `names` (all when none) current until `stop`.

    Blocking. The Navigator and the Analyst act after the next_steps projection,
    so only where it runs. The Navigator writes plans back through `redis`, whose
    event `loop` runs elsewhere (`serve`'s own, in the embedded default); without
    them, through a client of TUTORLANE_REDIS_URL on a loop of this function's, or
    not at all. Raises UnknownProjection for a name that is not a projection.
    """
    from tutorlane.bootstrap import connect_redis

    read_side = open_read_side(settings)
    try:
        chosen = read_side.pick(names)
    except UnknownProjection:
        read_side.close()
        raise
    with_agents = any(projection.name == NEXT_STEPS for projection in chosen)
    own_loop: asyncio.AbstractEventLoop | None = None
    if with_agents and redis is None and settings.redis_url is not None:
        own_loop = asyncio.new_event_loop()
        threading.Thread(target=own_loop.run_forever, daemon=True).start()
        redis, loop = connect_redis(settings), own_loop
    agents = None
    if with_agents and redis is not None and loop is not None:
        agents = build_agents(settings, read_side, redis, loop)
    elif with_agents:
        logger.info("Navigator plans stay in next_steps: no Redis to write them to")
    try:
        runner = ProjectionRunner(
            chosen,
            read_side.tables,
            read_side.feed,
            batch_size=batch_size,
            after_commit=agents.after_commit if agents else None,
            reload_parameters=read_side.reload_parameters,
        )
        logger.info(
            "projection runner started: %s",
            ", ".join(projection.name for projection in chosen),
        )
        runner.run(stop, drain_seconds=drain_seconds)
        if agents is not None and drain_seconds:
            # The analyses in flight become events: project them too.
            agents.wait_for_analyses(AGENTS_DRAIN_SECONDS)
            runner.drain(drain_seconds)
    finally:
        if agents is not None:
            agents.wait_for_analyses(AGENTS_DRAIN_SECONDS)
        if own_loop is not None:
            asyncio.run_coroutine_threadsafe(_close(redis), own_loop).result(5)
            own_loop.call_soon_threadsafe(own_loop.stop)
        read_side.close()
    logger.info("projection runner stopped")


async def _close(redis: RedisClient | None) -> None:
    if redis is not None:
        await redis.aclose()


def build_agents(
    settings: Settings,
    read_side: ReadSide,
    redis: RedisClient,
    loop: asyncio.AbstractEventLoop,
) -> StudentAgents:
    """Return the Navigator's write-back and the Analyst, for the served course."""
    from tutorlane.bootstrap import build_analysis, pick_course

    course = pick_course(settings)
    sessions = RedisSessionStore(redis, shards=settings.shards)
    # A course whose order is fixed takes no plans: writing them would be wasted.
    planners = (
        {course.id: PlanNextSteps(sessions, Navigator(course))}
        if course.navigator
        else {}
    )
    return StudentAgents(
        read_side.store,
        loop,
        planners,
        build_analysis(settings, course),
    )


def rebuild_of(read_side: ReadSide, projection: Projection) -> ProjectionRebuild:
    """Return a rebuild of one projection by this process: `run()` swaps it in,
    `check()` compares it with the live tables."""
    return ProjectionRebuild(
        projection, read_side.tables, read_side.feed, process_owner()
    )


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """Where one projection stands against the log."""

    name: str
    version: int
    generation: int
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
                ProjectionStatus(projection.name, 0, 0, 0, head, 0, 0, "run migrate")
            )
            continue
        rows = sum(read_side.tables.count_rows(table) for table in projection.tables)
        statuses.append(
            ProjectionStatus(
                projection.name,
                state.version,
                state.generation,
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
        # NOTE: the courses are part of the parameters: a TUTORLANE_FLOWS other
        # than the runners' reads as a change too.
        notes.append("parameters or courses changed (or TUTORLANE_FLOWS): rebuild")
    if state.rebuild_generation is not None:
        who = state.rebuild_owner or "nobody (interrupted; rebuild resumes)"
        notes.append(f"rebuild at event {state.rebuild_position} by {who}")
    return "; ".join(notes)
