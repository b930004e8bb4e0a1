"""The worker process: deliveries from the bus, in batches, into the event store."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tutorlane.commands.ports import Delivery
from tutorlane.commands.record_events import EventRecorder

logger = logging.getLogger(__name__)


class Batcher:
    """Gathers deliveries into batches and records them, retrying on failure."""

    def __init__(
        self, recorder: EventRecorder, max_batch: int = 1000, linger: float = 0.02
    ) -> None:
        self.recorder = recorder
        self.max_batch = max_batch
        self.linger = linger
        self.inbox: asyncio.Queue[Delivery] = asyncio.Queue()

    async def on_delivery(self, delivery: Any) -> None:
        """Take one delivery from the bus."""
        self.inbox.put_nowait(delivery)

    async def next_batch(self, idle: float = 1.0) -> list[Delivery]:
        """Wait up to `idle` s for a delivery, then take what arrives within linger."""
        loop = asyncio.get_running_loop()
        try:
            batch = [await asyncio.wait_for(self.inbox.get(), idle)]
        except TimeoutError:
            return []
        deadline = loop.time() + self.linger
        while len(batch) < self.max_batch:
            if not self.inbox.empty():
                batch.append(self.inbox.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.inbox.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def run(self) -> None:
        """Record batches forever; while the event store is down, keep retrying."""
        backoff = 0.5
        retrying = False
        while True:
            # After a failure the recorder still holds that batch: retry it first.
            batch = [] if retrying else await self.next_batch()
            try:
                await self.recorder.record(batch)
            except Exception as ex:
                # Nothing was settled: the events wait here and in the bus.
                logger.warning(
                    "recording %d events failed (%s: %s); retrying in %.1fs",
                    self.recorder.held,
                    type(ex).__name__,
                    str(ex)[:200],
                    backoff,
                )
                retrying = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 15.0)
                continue
            retrying = False
            backoff = 0.5
