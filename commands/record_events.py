"""The worker's core: record batches of events exactly once, in each student's order.

For each batch it asks the event store for every student's last sequence number,
then: an event at or below it was recorded before (a redelivery) and is settled
without a second record; the run of events that continues it is appended in one
transaction and settled only after the commit; an event beyond a gap is held back
until the missing one arrives, and given back to the bus if it does not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tutorlane.adapters.codecs import CorruptRecord, event_from_json, event_topic
from tutorlane.commands.ports import Delivery, EventLog, EventPublisher, NewRecord
from tutorlane.domain.events import Event

logger = logging.getLogger(__name__)

HOLD_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class _Pending:
    event: Event
    delivery: Delivery
    since: float


@dataclass
class BatchOutcome:
    """What one batch did."""

    recorded: int = 0
    duplicates: int = 0
    held: int = 0
    dead: int = 0


class EventRecorder:
    """Appends delivered events to the event store exactly once, in order."""

    def __init__(
        self,
        log: EventLog,
        dead_letters: EventPublisher,
        clock: Callable[[], float] = time.monotonic,
        hold_seconds: float = HOLD_SECONDS,
    ) -> None:
        self.log = log
        self.dead_letters = dead_letters
        self.clock = clock
        self.hold_seconds = hold_seconds
        self._held: dict[str, dict[int, _Pending]] = defaultdict(dict)
        self.recorded = 0

    @property
    def held(self) -> int:
        """Count the events waiting for an earlier one of the same student."""
        return sum(len(events) for events in self._held.values())

    async def record(self, deliveries: Sequence[Delivery]) -> BatchOutcome:
        """Record a batch; raises (settling nothing) if the event store fails."""
        outcome = BatchOutcome()
        now = self.clock()
        for delivery in deliveries:
            event = await self._read(delivery, outcome)
            if event is None:
                continue
            held = self._held[event.student]
            if event.seq in held:
                # A second copy of an event still waiting here: the first one
                # will be recorded, and the bus redelivers if we crash first.
                outcome.duplicates += 1
                await delivery.ack()
                continue
            held[event.seq] = _Pending(event, delivery, now)

        students = list(self._held)
        if not students:
            return outcome
        last = await asyncio.to_thread(self.log.last_seqs, students)

        ready: list[_Pending] = []
        redelivered: list[_Pending] = []
        for student in students:
            self._take_runs(student, last.get(student, 0), ready, redelivered)

        if ready:
            records = [_record_of(item.event, item.delivery) for item in ready]
            try:
                await asyncio.to_thread(self.log.append, records)
            except BaseException:
                # Keep them for the next try; nothing was settled.
                for item in (*ready, *redelivered):
                    self._held[item.event.student][item.event.seq] = item
                raise
        for item in (*ready, *redelivered):
            await item.delivery.ack()

        outcome.recorded = len(ready)
        outcome.duplicates += len(redelivered)
        outcome.held = self.held
        self.recorded += len(ready)
        await self._give_back_stale(now)
        return outcome

    async def _read(self, delivery: Delivery, outcome: BatchOutcome) -> Event | None:
        try:
            return event_from_json(delivery.body)
        except CorruptRecord as ex:
            outcome.dead += 1
            logger.error("dead-lettering an unreadable event: %s", ex)
            await self.dead_letters.dead_letter(delivery.body, str(ex))
            await delivery.ack()
            return None

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
        # this worker (it may sit with another consumer after a failover); hand it
        # back so that it is delivered again rather than kept here forever.
        for student in list(self._held):
            held = self._held[student]
            for seq in sorted(held):
                if now - held[seq].since >= self.hold_seconds:
                    logger.warning(
                        "event seq=%d of student=%s waited %.0fs for an earlier one; "
                        "giving it back to the bus",
                        seq,
                        student,
                        now - held[seq].since,
                    )
                    await held.pop(seq).delivery.retry_later()
            if not held:
                del self._held[student]

    async def release_all(self) -> None:
        """Give every held event back to the bus (on shutdown)."""
        for held in self._held.values():
            for item in held.values():
                await item.delivery.retry_later()
        self._held.clear()


def _record_of(event: Event, delivery: Delivery) -> NewRecord:
    return NewRecord(event.student, event.seq, event_topic(event), delivery.body)
