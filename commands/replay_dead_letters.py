"""Replay parked events: send what the dead-letter queue holds back to the workers.

The worker parks what it cannot record: an event it cannot read (a newer release
wrote it, or it is damaged), a sequence number that already holds another event, an
event whose predecessor never came. Once the cause is dealt with (the worker
upgraded, the missing event recorded), a replay sends each parked event back through
the bus. The worker records it once, drops it if it was recorded meanwhile, or parks
it again with its reason. A message that still cannot be read goes back to the end
of the dead-letter queue, so nothing parked is ever dropped here.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from tutorlane.commands.ports import (
    BusMessage,
    DeadLetterQueue,
    DeliveredEvent,
    EventPublisher,
)

logger = logging.getLogger(__name__)


@dataclass
class ReplayOutcome:
    """What one replay did, in messages taken from the queue and events sent."""

    messages: int = 0
    events: int = 0
    still_unreadable: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


class ReplayDeadLetters:
    """Moves parked events back onto the bus, oldest first."""

    def __init__(self, parked: DeadLetterQueue, bus: EventPublisher) -> None:
        self.parked = parked
        self.bus = bus

    async def replay(self, limit: int) -> ReplayOutcome:
        """Replay up to `limit` parked messages; put back those still unreadable."""
        outcome = ReplayOutcome()
        for message in await self.parked.take(limit):
            outcome.reasons[message.reason] += 1
            events = [
                event for event in message.events if isinstance(event, DeliveredEvent)
            ]
            if len(events) < len(message.events) or not events:
                # NOTE: sending the readable part alone would park the rest under
                # a new reason and lose the old one: the message waits whole.
                await message.park_again()
                outcome.still_unreadable += 1
                continue

            # Settled only once the bus confirmed every event: a crash in between
            # sends them twice, and the worker drops the second copy.
            await self.bus.publish(
                [
                    BusMessage(event.event_id, event.student, event.seq, event.body)
                    for event in events
                ]
            )
            await message.settle()
            outcome.messages += 1
            outcome.events += len(events)
        logger.info(
            "replayed %d parked messages (%d events); %d still unreadable, put back",
            outcome.messages,
            outcome.events,
            outcome.still_unreadable,
        )
        return outcome
