"""The worker's core: record batches of events exactly once, in each student's order.

A bus message carries several events. For each batch the recorder asks the event
store for every student's last sequence number, then: an event at or below it was
recorded before (a redelivery) and counts as done; the run of events continuing it
is appended in one transaction; an event beyond a gap is held back until the
missing one arrives, and its message is given back to the bus if it does not. A
message is settled once every event in it is done, and only after the commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tutorlane.commands.ports import (
    DeliveredEvent,
    Delivery,
    EventLog,
    EventPublisher,
    NewRecord,
    UnreadableEvent,
)

logger = logging.getLogger(__name__)

HOLD_SECONDS = 30.0
# An event still waiting for an earlier one after this long will not see it: the
# earlier event was lost or never existed (a forged or corrupted message). It is
# parked on the dead-letter queue rather than cycled through the bus forever.
GIVE_UP_ON_GAP_SECONDS = 600.0


@dataclass(eq=False)
class _Message:
    """A bus message and how many of its events are still to be done."""

    delivery: Delivery
    remaining: int
    received: float
    settled: bool = False

    async def done(self, count: int = 1) -> None:
        self.remaining -= count
        if self.remaining <= 0 and not self.settled:
            self.settled = True
            await self.delivery.ack()

    async def give_back(self) -> None:
        if not self.settled:
            self.settled = True
            await self.delivery.retry_later()


@dataclass(frozen=True, slots=True)
class _Pending:
    event: DeliveredEvent
    message: _Message


@dataclass
class BatchOutcome:
    """What one batch did."""

    recorded: int = 0
    duplicates: int = 0
    held: int = 0
    dead: int = 0
    given_back: list[str] = field(default_factory=list)


class EventRecorder:
    """Appends delivered events to the event store exactly once, in order."""

    def __init__(
        self,
        log: EventLog,
        dead_letters: EventPublisher,
        clock: Callable[[], float] = time.monotonic,
        hold_seconds: float = HOLD_SECONDS,
        give_up_on_gap_seconds: float = GIVE_UP_ON_GAP_SECONDS,
    ) -> None:
        self.log = log
        self.dead_letters = dead_letters
        self.clock = clock
        self.hold_seconds = hold_seconds
        self.give_up_on_gap_seconds = give_up_on_gap_seconds
        self._held: dict[str, dict[int, _Pending]] = defaultdict(dict)
        # When each event still waiting for a gap was first seen, across redeliveries.
        self._waiting_since: dict[tuple[str, int], float] = {}
        self.recorded = 0

    @property
    def held(self) -> int:
        """Count the events waiting: for an earlier event, or for a retry."""
        return sum(len(events) for events in self._held.values())

    async def record(self, deliveries: Sequence[Delivery]) -> BatchOutcome:
        """Record a batch; raises if the event store or the bus fails.

        What a failure leaves unsettled is held for the next call (a batch of
        nothing will do): the events are appended once, their messages settled.
        """
        outcome = BatchOutcome()
        now = self.clock()
        for delivery in deliveries:
            await self._take(delivery, now, outcome)

        students = list(self._held)
        if not students:
            return outcome
        last = await asyncio.to_thread(self.log.last_seqs, students)

        ready: list[_Pending] = []
        redelivered: list[_Pending] = []
        for student in students:
            self._take_runs(student, last.get(student, 0), ready, redelivered)

        if ready:
            records = [_record_of(item.event) for item in ready]
            try:
                await asyncio.to_thread(self.log.append, records)
            except BaseException:
                # Keep them for the next try; nothing of theirs was settled.
                for item in (*ready, *redelivered):
                    self._held[item.event.student][item.event.seq] = item
                raise
        self.recorded += len(ready)
        outcome.recorded = len(ready)

        settling = [*ready, *redelivered]
        settled = 0
        try:
            conflicting = await self._conflicting(redelivered)
            for item in settling:
                if item in conflicting:
                    await self._park(item, conflicting[item])
                else:
                    await item.message.done()
                self._waiting_since.pop((item.event.student, item.event.seq), None)
                settled += 1
        except BaseException:
            # NOTE: their events are in the store, but their messages are not all
            # settled: hold those again, and the next try finds them recorded (as
            # redeliveries) and settles them then.
            for item in settling[settled:]:
                self._held[item.event.student][item.event.seq] = item
            raise
        outcome.duplicates += len(redelivered) - len(conflicting)
        outcome.dead += len(conflicting)
        await self._give_back_stale(now)
        outcome.held = self.held
        return outcome

    async def _conflicting(self, redelivered: list[_Pending]) -> dict[_Pending, str]:
        """Find "redeliveries" that are in fact other events under a known seq.

        That happens only when a student's session was lost and rebuilt without the
        event store: the new events reused old sequence numbers. They are parked
        with the reason rather than dropped as duplicates.
        """
        if not redelivered:
            return {}
        keys = [(item.event.student, item.event.seq) for item in redelivered]
        recorded = await asyncio.to_thread(self.log.event_ids, keys)
        conflicting = {}
        for item, key in zip(redelivered, keys, strict=True):
            if recorded.get(key, item.event.event_id) != item.event.event_id:
                conflicting[item] = (
                    f"seq {key[1]} of student {key[0]} already holds another event "
                    f"({recorded[key]}); this one is {item.event.event_id}"
                )
        return conflicting

    async def _park(self, item: _Pending, reason: str) -> None:
        logger.error("dead-lettering: %s", reason)
        await self.dead_letters.dead_letter(item.event.body, reason)
        await item.message.done()

    async def _take(
        self, delivery: Delivery, now: float, outcome: BatchOutcome
    ) -> None:
        message = _Message(delivery, len(delivery.events), now)
        if not delivery.events:
            await message.done(0)
            return
        for part in delivery.events:
            if isinstance(part, UnreadableEvent):
                outcome.dead += 1
                logger.error("dead-lettering an unreadable event: %s", part.problem)
                await self.dead_letters.dead_letter(part.body, part.problem)
                await message.done()
                continue
            held = self._held[part.student]
            waiting = held.get(part.seq)
            if waiting is not None and waiting.event.event_id != part.event_id:
                # Two events under one seq (a session rebuilt without the events
                # still on their way): the first one seen is kept, this one parked.
                outcome.dead += 1
                await self._park(
                    _Pending(part, message),
                    f"seq {part.seq} of student {part.student} is already taken by "
                    f"another event ({waiting.event.event_id}); this one is "
                    f"{part.event_id}",
                )
                continue
            if waiting is not None:
                # A second copy of an event still waiting here: the first copy
                # will be recorded, and the bus redelivers it if we crash first.
                outcome.duplicates += 1
                await message.done()
                continue
            held[part.seq] = _Pending(part, message)
            self._waiting_since.setdefault((part.student, part.seq), now)

    def _take_runs(
        self,
        student: str,
        last_seq: int,
        ready: list[_Pending],
        redelivered: list[_Pending],
    ) -> None:
        held = self._held[student]
        for seq in sorted(held):
            if seq <= last_seq:
                redelivered.append(held.pop(seq))
            elif seq == last_seq + 1:
                ready.append(held.pop(seq))
                last_seq = seq
            else:
                break
        if not held:
            del self._held[student]

    async def _give_back_stale(self, now: float) -> None:
        # NOTE: an event held this long waits for one that is not coming through
        # this worker (it may sit with another consumer after a failover). Its whole
        # message goes back to the bus to be delivered again; the events of it that
        # were recorded meanwhile come back as duplicates and are dropped then.
        stale: dict[_Message, list[_Pending]] = defaultdict(list)
        for held in self._held.values():
            for item in held.values():
                if now - item.message.received >= self.hold_seconds:
                    stale[item.message].append(item)
        for message, items in stale.items():
            for item in items:
                del self._held[item.event.student][item.event.seq]
                if not self._held[item.event.student]:
                    del self._held[item.event.student]
            if all(self._gave_up_on(item, now) for item in items):
                for item in items:
                    await self._park_unfillable(item, now)
            else:
                logger.warning(
                    "%d events waited %.0fs for earlier ones; giving their message "
                    "back to the bus",
                    len(items),
                    now - message.received,
                )
                await message.give_back()

    def _gave_up_on(self, item: _Pending, now: float) -> bool:
        key = (item.event.student, item.event.seq)
        return now - self._waiting_since.get(key, now) >= self.give_up_on_gap_seconds

    async def _park_unfillable(self, item: _Pending, now: float) -> None:
        key = (item.event.student, item.event.seq)
        waited = now - self._waiting_since.pop(key, now)
        reason = (
            f"seq {item.event.seq} of student {item.event.student} waited "
            f"{waited:.0f}s for an earlier event that never came"
        )
        await self._park(item, reason)

    async def release_all(self) -> None:
        """Give every message still held back to the bus (on shutdown)."""
        messages = {
            item.message for held in self._held.values() for item in held.values()
        }
        self._held.clear()
        for message in messages:
            await message.give_back()


def _record_of(event: DeliveredEvent) -> NewRecord:
    return NewRecord(event.student, event.seq, event.topic, event.body)
