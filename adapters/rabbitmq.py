"""RabbitMQ (aio-pika): the durable, sharded bus between the relay and the workers.

Topology: a direct exchange `NAME.events` routes each event to one of N durable
queues `NAME.events.NN` by student, so one student's events stay in one queue;
each queue has a single active consumer, so they are also processed in order. A bus
message carries up to ENVELOPE events of one queue, in their order. Queues
dead-letter into `NAME.dead`, where the worker also parks poison messages with
the reason in the `x-tutorlane-reason` header; `RabbitMQDeadLetters` takes them out
again to be replayed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from tutorlane.adapters.codecs import encode_envelope, read_envelope, read_parked
from tutorlane.commands.ports import BusMessage

DEFAULT_NAME = "tutorlane"
DEFAULT_QUEUES = 8
ENVELOPE = 1000


def queue_of(student: str, queues: int) -> int:
    """Return the queue a student's events go to.

    The same hash as the student's outbox shard (`shard_of`): when the number of
    queues divides the number of shards, all of a shard's events go to one queue,
    so that a relay batch, read from one shard, is one bus message, not one per
    queue (at a steady trickle that made a publish per event or two).
    """
    digest = hashlib.blake2b(student.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % queues


@dataclass(frozen=True)
class Topology:
    """A deployment's exchanges and queues, all named after it.

    Two deployments (or a test run) on one broker never share a queue as long as
    their names differ.
    """

    name: str = DEFAULT_NAME
    queues: int = DEFAULT_QUEUES
    quorum: bool = False

    @property
    def exchange(self) -> str:
        """Return the name of the events exchange."""
        return f"{self.name}.events"

    @property
    def dead(self) -> str:
        """Return the name of the dead-letter exchange and of its queue."""
        return f"{self.name}.dead"

    def queue_name(self, index: int) -> str:
        """Return the name of one shard queue."""
        return f"{self.exchange}.{index:02d}"

    async def declare(
        self, channel: AbstractChannel
    ) -> tuple[AbstractExchange, list[AbstractQueue]]:
        """Declare exchanges and queues (idempotent); return exchange and queues."""
        dead = await channel.declare_exchange(
            self.dead, aio_pika.ExchangeType.FANOUT, durable=True
        )
        kind: dict[str, Any] = {"x-queue-type": "quorum"} if self.quorum else {}
        dead_queue = await channel.declare_queue(
            self.dead, durable=True, arguments=kind
        )
        await dead_queue.bind(dead)

        exchange = await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        queues = []
        for index in range(self.queues):
            queue = await channel.declare_queue(
                self.queue_name(index),
                durable=True,
                arguments={
                    "x-single-active-consumer": True,
                    "x-dead-letter-exchange": self.dead,
                    **kind,
                },
            )
            await queue.bind(exchange, routing_key=f"{index:02d}")
            queues.append(queue)
        return exchange, queues

    async def delete(self, channel: AbstractChannel) -> None:
        """Delete every queue and exchange of this deployment (tests, benches)."""
        for name in [self.queue_name(i) for i in range(self.queues)] + [self.dead]:
            await channel.queue_delete(name)
        for name in (self.exchange, self.dead):
            await channel.exchange_delete(name)


class RabbitMQPublisher:
    """Publishes events persistently and waits for the broker's confirms."""

    def __init__(self, url: str, topology: Topology) -> None:
        self.url = url
        self.topology = topology
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._dead: AbstractExchange | None = None

    async def _ready(self) -> tuple[AbstractExchange, AbstractExchange]:
        if self._exchange is None or self._dead is None or self._connection is None:
            self._connection = await aio_pika.connect_robust(self.url, timeout=5)
            channel = await self._connection.channel(publisher_confirms=True)
            self._exchange, _ = await self.topology.declare(channel)
            self._dead = await channel.get_exchange(self.topology.dead)
        return self._exchange, self._dead

    async def publish(self, messages: Sequence[BusMessage]) -> None:
        """Publish all; return once every one is confirmed, raise otherwise."""
        if not messages:
            return
        exchange, _ = await self._ready()
        # Publishes start in order (aiormq writes them under a FIFO lock), and the
        # confirms are awaited together: one round trip's wait for the whole batch.
        confirms = [
            exchange.publish(_envelope(bodies), f"{queue:02d}")
            for queue, bodies in envelopes(messages, self.topology.queues)
        ]
        await asyncio.gather(*confirms)

    async def dead_letter(self, body: bytes, reason: str) -> None:
        """Park a message that cannot be processed, with the reason in a header."""
        _, dead = await self._ready()
        message = aio_pika.Message(
            body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={"x-tutorlane-reason": reason[:1000]},
        )
        await dead.publish(message, routing_key="")

    async def close(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
            self._exchange = self._dead = None


def envelopes(
    messages: Sequence[BusMessage], queues: int
) -> Iterator[tuple[int, list[bytes]]]:
    """Group events by queue, in order, into bus messages of at most ENVELOPE events.

    One AMQP message per event costs more CPU than the event itself on both sides;
    carrying a batch's events of one queue together keeps each student's order.
    """
    by_queue: dict[int, list[bytes]] = defaultdict(list)
    for item in messages:
        by_queue[queue_of(item.student, queues)].append(item.body)
    for queue, bodies in by_queue.items():
        for start in range(0, len(bodies), ENVELOPE):
            yield queue, bodies[start : start + ENVELOPE]


def _envelope(bodies: list[bytes]) -> aio_pika.Message:
    return aio_pika.Message(
        encode_envelope(bodies),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={"events": len(bodies)},
    )


class RabbitMQDelivery:
    """A message from a shard queue, settled by the worker."""

    def __init__(self, message: AbstractIncomingMessage) -> None:
        self.message = message
        self.events = read_envelope(message.body)

    async def ack(self) -> None:
        """The event is recorded: the broker may forget it."""
        await self.message.ack()

    async def retry_later(self) -> None:
        """Give it back to the queue to be delivered again."""
        await self.message.nack(requeue=True)


class RabbitMQConsumer:
    """Consumes every shard queue and hands deliveries to a callback."""

    def __init__(self, url: str, topology: Topology, prefetch: int = 2000) -> None:
        self.url = url
        self.topology = topology
        self.prefetch = prefetch
        self._connection: AbstractRobustConnection | None = None

    async def start(
        self, on_delivery: Callable[[RabbitMQDelivery], Awaitable[None]]
    ) -> None:
        """Connect, declare the topology and start consuming every shard queue."""
        self._connection = await aio_pika.connect_robust(self.url, timeout=5)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        # NOTE: consuming the queues this robust channel declared lets aio-pika
        # declare and consume them again if the broker cancels us (a queue deleted).
        _, queues = await self.topology.declare(channel)

        async def deliver(message: AbstractIncomingMessage) -> None:
            await on_delivery(RabbitMQDelivery(message))

        for queue in queues:
            await queue.consume(deliver)

    async def close(self) -> None:
        """Stop consuming; unsettled messages go back to their queues."""
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


class RabbitMQParked:
    """A message taken from the dead-letter queue, not yet settled."""

    def __init__(
        self, message: AbstractIncomingMessage, dead: AbstractExchange
    ) -> None:
        self.message = message
        self.dead = dead
        self.body = message.body
        self.events = read_parked(message.body)
        self.reason = parked_reason(message.headers)

    async def settle(self) -> None:
        """Remove it from the dead-letter queue."""
        await self.message.ack()

    async def park_again(self) -> None:
        """Publish a copy at the end of the dead-letter queue, then drop this one."""
        copy = aio_pika.Message(
            self.message.body,
            content_type=self.message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=dict(self.message.headers),
        )
        await self.dead.publish(copy, routing_key="")
        await self.message.ack()


def parked_reason(headers: Mapping[str, Any]) -> str:
    """Return why a message was parked: the worker's reason, or RabbitMQ's."""
    reason = headers.get("x-tutorlane-reason")
    if reason:
        return reason.decode() if isinstance(reason, bytes) else str(reason)
    # NOTE: a message RabbitMQ dead-lettered itself (rejected, over a quorum
    # queue's delivery limit) carries the story in x-death instead.
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        why, where = deaths[0].get("reason"), deaths[0].get("queue")
        return f"dead-lettered by RabbitMQ: {why} in {where}"
    return "parked without a reason"


class RabbitMQDeadLetters:
    """The deployment's dead-letter queue, `NAME.dead`, taken from one at a time."""

    def __init__(self, url: str, topology: Topology) -> None:
        self.url = url
        self.topology = topology
        self._connection: AbstractConnection | None = None

    async def take(self, limit: int) -> list[RabbitMQParked]:
        """Take up to `limit` of the messages parked now, oldest first."""
        if self._connection is None:
            self._connection = await aio_pika.connect(self.url, timeout=5)
        channel = await self._connection.channel(publisher_confirms=True)
        await self.topology.declare(channel)
        queue = await channel.get_queue(self.topology.dead)
        dead = await channel.get_exchange(self.topology.dead)

        # NOTE: no more than were there at the start: a message parked again goes
        # to the end of this very queue and must not come round a second time.
        declared = queue.declaration_result
        waiting = declared.message_count if declared is not None else 0
        taken = []
        for _ in range(min(limit, waiting or 0)):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            taken.append(RabbitMQParked(message, dead))
        return taken

    async def close(self) -> None:
        """Disconnect; messages taken and not settled go back to the queue."""
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
