"""The relay: moves events from the Redis outbox to the bus, confirmed, in order.

An outbox entry is acknowledged (and removed) only after the bus confirmed every
event in it, so a crash at any point re-sends rather than loses; the worker drops
what it has already recorded. Entries left by a relay that died are reclaimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tutorlane.commands.ports import BusMessage, EventOutbox, EventPublisher

logger = logging.getLogger(__name__)

BATCH = 500
RECLAIM_IDLE_MS = 60_000
# After a batch smaller than BATCH, a shard waits this long before reading again,
# so that a steady trickle travels in batches: each read, publish, confirm and
# acknowledgement costs about as much CPU as the events it carries.
LINGER_SECONDS = 0.05


class EventRelay:
    """Relays every shard of the event outbox to the bus."""

    def __init__(
        self,
        outbox: EventOutbox,
        publisher: EventPublisher,
        consumer: str,
        batch: int = BATCH,
        block_ms: int = 1000,
        linger_seconds: float = LINGER_SECONDS,
    ) -> None:
        self.outbox = outbox
        self.publisher = publisher
        self.consumer = consumer
        self.batch = batch
        self.block_ms = block_ms
        self.linger_seconds = linger_seconds
        self.relayed = 0

    async def relay_shard_once(self, shard: int, pending: bool = False) -> int:
        """Relay one batch of a shard; return how many entries left the outbox."""
        entries = await self.outbox.read(
            shard, self.consumer, self.batch, self.block_ms, pending
        )
        if not entries:
            return 0

        messages: list[BusMessage] = []
        for entry in entries:
            if entry.problem is not None:
                # NOTE: an unreadable entry would block its shard forever; park it.
                logger.error("dead-lettering: %s", entry.problem)
                await self.publisher.dead_letter(entry.payload, entry.problem)
            messages.extend(entry.messages)
        await self.publisher.publish(messages)

        await self.outbox.acknowledge(shard, [entry.entry_id for entry in entries])
        self.relayed += len(messages)
        return len(entries)

    async def run_shard(
        self, shard: int, stop: asyncio.Event, reclaim_every: float = 10.0
    ) -> None:
        """Relay one shard until `stop` is set; back off while the bus is away."""
        loop = asyncio.get_running_loop()
        backoff = 0.5
        pending = True  # first re-send what this consumer left unacknowledged
        next_reclaim = loop.time()
        while not stop.is_set():
            try:
                if loop.time() >= next_reclaim:
                    next_reclaim = loop.time() + reclaim_every
                    pending = await self._reclaim(shard) > 0 or pending
                relayed = await self.relay_shard_once(shard, pending)
            except Exception as ex:
                logger.warning(
                    "relay of shard %d failed (%s: %s); retrying in %.1fs",
                    shard,
                    type(ex).__name__,
                    ex,
                    backoff,
                )
                pending = True
                await _sleep_unless(stop, backoff)
                backoff = min(backoff * 2, 15.0)
                continue
            backoff = 0.5
            if pending and relayed == 0:
                pending = False
            if 0 < relayed < self.batch and not pending:
                await _sleep_unless(stop, self.linger_seconds)

    async def _reclaim(self, shard: int) -> int:
        taken = await self.outbox.reclaim(
            shard, self.consumer, RECLAIM_IDLE_MS, self.batch
        )
        if taken:
            logger.info(
                "reclaimed %d entries of shard %d from a dead relay", taken, shard
            )
        return taken

    async def run(self, stop: asyncio.Event) -> None:
        """Relay every shard until `stop` is set."""
        await asyncio.gather(
            *(self.run_shard(shard, stop) for shard in range(self.outbox.shards))
        )


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
