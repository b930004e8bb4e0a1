"""Rebuilding a projection beside the live one, then swapping it in.

A rebuild fills the next generation of the projection's tables from the whole log,
under a lease in `projection_state` that it renews with every batch: a second
rebuild of the same projection is refused while the lease holds, and one started
after the holder died (its lease lapsed) resumes where it stopped. Once the new
generation has caught up, one transaction applies the last events while holding the
live runner off and makes it live; then the views follow and the old tables go.

A check fills a generation the same way, only as far as the live tables have come,
compares the two row for row with the live runner held off, and drops its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from tutorlane.projections.base import Projection, ProjectionState, TableDifference
from tutorlane.projections.runner import EventFeed, LockedProjection, ProjectionTables

REBUILD_BATCH = 5000
LEASE_SECONDS = 60.0


class RebuildRunning(RuntimeError):
    """Another process is rebuilding the same projection right now."""


class LostLease(RuntimeError):
    """This rebuild's lease was taken over; another process carries on with it."""


@dataclass(frozen=True, slots=True)
class RebuildClaim:
    """What a rebuild starts from."""

    generation: int
    position: int
    resumed: bool


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What a finished rebuild did."""

    name: str
    generation: int
    position: int
    events: int
    seconds: float
    resumed: bool


@dataclass(frozen=True, slots=True)
class CheckReport:
    """How a projection's live tables compare with a rebuild from the log."""

    name: str
    position: int  # both were compared as of this event
    events: int
    seconds: float
    differences: tuple[TableDifference, ...]
    live_is_current: bool  # built by this code version with these parameters

    @property
    def equal(self) -> bool:
        """Tell whether every table of the live projection equals the rebuild."""
        return all(difference.equal for difference in self.differences)


Progress = Callable[[int, int], None]

NO_REBUILD: dict[str, Any] = dict.fromkeys(
    (
        "rebuild_version",
        "rebuild_generation",
        "rebuild_position",
        "rebuild_fingerprint",
        "rebuild_owner",
        "rebuild_started_at",
        "rebuild_lease_until",
    )
)


class ProjectionRebuild:
    """One projection rebuilt from the log by this process."""

    def __init__(
        self,
        projection: Projection,
        tables: ProjectionTables,
        feed: EventFeed,
        owner: str,
        *,
        batch_size: int = REBUILD_BATCH,
        lease_seconds: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.projection = projection
        self.tables = tables
        self.feed = feed
        self.owner = owner
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.name = projection.name

    def claim(self) -> RebuildClaim:
        """Take the rebuild's lease: resume a lapsed rebuild or start a new one.

        Raises `RebuildRunning` while another process holds the lease.
        """
        fingerprint = self.projection.fingerprint()
        with self.tables.locked(self.name) as locked:
            state = locked.state
            now = self.clock()
            self.refuse_if_running(state, now)
            lease = {
                "rebuild_owner": self.owner,
                "rebuild_lease_until": now + self.lease_seconds,
            }
            if (
                state.rebuild_generation is not None
                and state.rebuild_version == self.projection.version
                and state.rebuild_fingerprint == fingerprint
            ):
                if state.rebuild_position:
                    locked.update(**lease)
                    return RebuildClaim(
                        state.rebuild_generation, state.rebuild_position, resumed=True
                    )
                # Claimed, but nothing written yet: start that generation afresh.
                generation = state.rebuild_generation
            else:
                generation = max(state.generation, state.rebuild_generation or 0) + 1
            locked.update(
                rebuild_version=self.projection.version,
                rebuild_generation=generation,
                rebuild_position=0,
                rebuild_fingerprint=fingerprint,
                rebuild_started_at=now,
                **lease,
            )
        self.tables.drop_other_generations(
            self.projection.tables, {state.generation, generation}
        )
        self.tables.create_generation(self.projection.tables, generation)
        return RebuildClaim(generation, 0, resumed=False)

    def refuse_if_running(self, state: ProjectionState, now: float) -> None:
        """Raise `RebuildRunning` if another process holds a live lease."""
        until = state.rebuild_lease_until or 0.0
        if state.rebuild_owner and state.rebuild_owner != self.owner and until > now:
            started = time.strftime(
                "%H:%M:%S", time.localtime(state.rebuild_started_at or now)
            )
            raise RebuildRunning(
                f"projection {self.name} is being rebuilt by {state.rebuild_owner} "
                f"(started {started}, at event {state.rebuild_position}); wait for it "
                f"to finish. If that process died, its lease lapses in "
                f"{until - now:.0f} s and a new rebuild resumes where it stopped"
            )

    def run(self, progress: Progress | None = None) -> RebuildReport:
        """Rebuild the projection and swap it in; `progress(done, total)` per batch."""
        started = time.monotonic()
        claim = self.claim()
        try:
            position, done = self.fill(claim, self.feed.head, progress)
            done += self.swap(claim.generation, position)
        except BaseException:
            self.release()
            raise

        if progress is not None:
            progress(done, done)
        return RebuildReport(
            self.name,
            claim.generation,
            position,
            done,
            time.monotonic() - started,
            claim.resumed,
        )

    def check(self, progress: Progress | None = None) -> CheckReport:
        """Rebuild the projection beside the live one, as far as the live one has
        come, and compare them row for row; then drop the rebuilt tables.

        The live tables stay live whatever the outcome.
        """
        started = time.monotonic()
        state = self.tables.states()[self.name]
        if state.rebuild_generation is not None:
            self.refuse_if_running(state, self.clock())
            raise RebuildRunning(
                f"projection {self.name} has an unfinished rebuild: finish it with "
                f"`tutorlane projections rebuild {self.name}`, then check"
            )
        claim = self.claim()
        try:
            position, done = self.fill(claim, self.live_position, progress)
            report = self.compare(claim.generation, position, done)
        finally:
            self.abandon(claim.generation)
        return replace(report, seconds=time.monotonic() - started)

    def fill(
        self, claim: RebuildClaim, up_to: Callable[[], int], progress: Progress | None
    ) -> tuple[int, int]:
        """Apply the log to the claimed generation in batches, as far as `up_to()`
        says at each batch; return the position reached and the events applied."""
        position = claim.position
        total = self.feed.count(position, up_to())
        done = 0
        while batch := self.feed.read(position, up_to(), self.batch_size):
            with self.tables.locked(self.name) as locked:
                self.check_lease(locked, claim.generation)
                self.projection.apply(
                    batch, locked.rows(self.projection.tables, claim.generation)
                )
                position = batch[-1].notification_id
                locked.update(
                    rebuild_position=position,
                    rebuild_lease_until=self.clock() + self.lease_seconds,
                )
            done += len(batch)
            total = max(total, done)
            if progress is not None:
                progress(done, total)
        return position, done

    def live_position(self) -> int:
        """Return how far the live tables have come in the log."""
        return self.tables.states()[self.name].position

    def compare(self, generation: int, position: int, done: int) -> CheckReport:
        """Bring the rebuilt generation to the live one's position, with the live
        runner held off, and compare their rows."""
        with self.tables.locked(self.name) as locked:
            self.check_lease(locked, generation)
            live = locked.state
            rows = locked.rows(self.projection.tables, generation)
            while batch := self.feed.read(position, live.position, self.batch_size):
                self.projection.apply(batch, rows)
                position = batch[-1].notification_id
                done += len(batch)
            differences = tuple(
                locked.differences(table, live.generation, generation)
                for table in self.projection.tables
            )
            current = (
                live.version == self.projection.version
                and live.fingerprint == self.projection.fingerprint()
            )
        return CheckReport(self.name, live.position, done, 0.0, differences, current)

    def abandon(self, generation: int) -> None:
        """Give up the claim and drop the generation it filled."""
        with self.tables.locked(self.name) as locked:
            live_generation = locked.state.generation
            if locked.state.rebuild_owner == self.owner:
                locked.update(**NO_REBUILD)
        self.tables.drop_other_generations(self.projection.tables, {live_generation})

    def swap(self, generation: int, position: int) -> int:
        """Apply the last events with the live runner held off, then go live."""
        applied = 0
        with self.tables.locked(self.name) as locked:
            self.check_lease(locked, generation)
            rows = locked.rows(self.projection.tables, generation)
            while batch := self.feed.read(position, self.feed.head(), self.batch_size):
                self.projection.apply(batch, rows)
                position = batch[-1].notification_id
                applied += len(batch)
            locked.update(
                version=self.projection.version,
                generation=generation,
                position=position,
                fingerprint=self.projection.fingerprint(),
                **NO_REBUILD,
            )
        self.tables.publish(self.projection.tables, generation)
        self.tables.drop_other_generations(self.projection.tables, {generation})
        return applied

    def check_lease(self, locked: LockedProjection, generation: int) -> None:
        """Raise `LostLease` unless this process still owns the rebuild."""
        state = locked.state
        if state.rebuild_owner != self.owner or state.rebuild_generation != generation:
            raise LostLease(
                f"the rebuild of {self.name} was taken over by "
                f"{state.rebuild_owner or 'nobody'}; this process stops"
            )

    def release(self) -> None:
        """Give the lease up at once, so that the next rebuild resumes from here."""
        try:
            with self.tables.locked(self.name) as locked:
                if locked.state.rebuild_owner == self.owner:
                    locked.update(rebuild_owner=None, rebuild_lease_until=None)
        except Exception:  # noqa: S110 - the lease lapses by itself anyway
            pass
