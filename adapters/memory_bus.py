"""The embedded default's bus: in-process asyncio queues, sharded like RabbitMQ's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from tutorlane.adapters.codecs import encode_envelope, read_envelope
from tutorlane.adapters.rabbitmq import DEFAULT_QUEUES, envelopes
from tutorlane.commands.ports import BusMessage

REDELIVERY_DELAY = 0.5


class InProcessDelivery:
    """A message from an in-process queue."""

    def __init__(self, bus: InProcessBus, queue: int, body: bytes) -> None:
        self.bus = bus
        self.queue = queue
        self.events = read_envelope(body)

    async def ack(self) -> None:
        """Count it settled: its events are recorded (or parked)."""
        self.bus.unsettled -= 1

    async def retry_later(self) -> None:
        """Put it back at the end of its queue after a short pause."""
        loop = asyncio.get_running_loop()
        loop.call_later(REDELIVERY_DELAY, self.bus.queues[self.queue].put_nowait, self)


class InProcessBus:
    """Queues in this process; what they hold is lost with it, as with fakeredis."""

    def __init__(self, queues: int = DEFAULT_QUEUES) -> None:
        self.queues: list[asyncio.Queue[InProcessDelivery]] = [
            asyncio.Queue() for _ in range(queues)
        ]
        self.dead: list[tuple[bytes, str]] = []
        self._tasks: list[asyncio.Task[None]] = []
        # Published and not yet acknowledged, wherever they are: in a queue, being
        # handed over, in the worker's hands. Counted, because a message between
        # two places is in neither.
        self.unsettled = 0

    async def publish(self, messages: Sequence[BusMessage]) -> None:
        """Queue every message; nothing to confirm in process."""
        for index, bodies in envelopes(messages, len(self.queues)):
            body = encode_envelope(bodies)
            self.queues[index].put_nowait(InProcessDelivery(self, index, body))
            self.unsettled += 1

    async def dead_letter(self, body: bytes, reason: str) -> None:
        """Keep a poison message and its reason."""
        self.dead.append((body, reason))

    async def start(
        self, on_delivery: Callable[[InProcessDelivery], Awaitable[None]]
    ) -> None:
        """Hand every queued message to `on_delivery`, one consumer per queue."""

        async def consume(queue: asyncio.Queue[InProcessDelivery]) -> None:
            while True:
                await on_delivery(await queue.get())

        self._tasks = [asyncio.create_task(consume(queue)) for queue in self.queues]

    async def close(self) -> None:
        """Stop consuming."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
