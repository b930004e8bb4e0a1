"""The embedded bus counts a message unsettled until the worker acknowledges it."""

from __future__ import annotations

import asyncio

from tutorlane.adapters.memory_bus import InProcessBus, InProcessDelivery
from tutorlane.commands.ports import BusMessage


def message(student: str, seq: int) -> BusMessage:
    return BusMessage(f"e-{student}-{seq}", student, seq, b'{"type": "x"}')


async def test_a_message_between_queue_and_worker_still_counts_as_unsettled() -> None:
    bus = InProcessBus(queues=2)
    handed: asyncio.Queue[InProcessDelivery] = asyncio.Queue()

    async def worker(delivery: InProcessDelivery) -> None:
        # Taken off the queue, not yet recorded: the moment a shutdown must not
        # mistake for idle.
        handed.put_nowait(delivery)

    await bus.start(worker)
    # NOTE: one publish each: messages of one queue in one publish share a delivery.
    await bus.publish([message("ana", 1)])
    await bus.publish([message("ana", 2)])
    first = await asyncio.wait_for(handed.get(), 5)
    second = await asyncio.wait_for(handed.get(), 5)

    assert bus.unsettled == 2
    await first.ack()
    assert bus.unsettled == 1
    await second.retry_later()
    assert bus.unsettled == 1, "given back, still on its way"
    await bus.close()
