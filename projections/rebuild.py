"""Rebuilding a projection beside the live one, then swapping it in.

A rebuild fills the next generation of the projection's tables from the whole log,
under a lease in `projection_state` that it renews with every batch: a second
rebuild of the same projection is refused while the lease holds, and one started
after the holder died (its lease lapsed) resumes where it stopped. Once the new
generation has caught up, one transaction applies the last events while holding the
live runner off and makes it live; then the views follow and the old tables go.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tutorlane.projections.base import Projection, ProjectionState
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


Progress = Callable[[int, int], None]


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
        position = claim.position
        total = self.feed.count(position, self.feed.head())
        done = 0

        try:
            while True:
                head = self.feed.head()
                batch = self.feed.read(position, head, self.batch_size)
                if not batch:
                    break
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
            done += self.swap(claim.generation, position)
        except BaseException:
            self.release()
            raise

        if progress is not None:
            progress(done, max(total, done))
        return RebuildReport(
            self.name,
            claim.generation,
            position,
            done,
            time.monotonic() - started,
            claim.resumed,
        )

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
                rebuild_version=None,
                rebuild_generation=None,
                rebuild_position=None,
                rebuild_fingerprint=None,
                rebuild_owner=None,
                rebuild_started_at=None,
                rebuild_lease_until=None,
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
