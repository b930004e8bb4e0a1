"""The slow lane's processes: the relay, the worker, and both inside `serve`."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from tutorlane.adapters.event_store import EventStore, open_event_store
from tutorlane.adapters.memory_bus import InProcessBus
from tutorlane.adapters.rabbitmq import (
    RabbitMQConsumer,
    RabbitMQDeadLetters,
    RabbitMQPublisher,
    Topology,
)
from tutorlane.adapters.redis_event_outbox import RedisEventOutbox
from tutorlane.adapters.redis_sessions import RedisClient
from tutorlane.commands.ports import EventPublisher
from tutorlane.commands.record_events import EventRecorder
from tutorlane.commands.relay_events import EventRelay
from tutorlane.commands.replay_dead_letters import ReplayDeadLetters, ReplayOutcome
from tutorlane.entrypoints.projections import run_projections
from tutorlane.entrypoints.settings import Settings
from tutorlane.entrypoints.worker import Batcher

logger = logging.getLogger(__name__)


def topology(settings: Settings) -> Topology:
    """Return this deployment's exchanges and queues on RabbitMQ."""
    return Topology(settings.bus_name, settings.queues, settings.quorum_queues)


def consumer_name() -> str:
    """Return a name for this process in the relay's consumer group."""
    return f"{socket.gethostname()}-{os.getpid()}"


async def open_store(settings: Settings) -> EventStore:
    """Open the event store (in a thread: it is synchronous)."""
    return await asyncio.to_thread(open_event_store, settings.event_store_url)


@dataclass
class EmbeddedPipeline:
    """Relay and worker inside one process, over in-process queues."""

    outbox: RedisEventOutbox
    relay: EventRelay
    batcher: Batcher
    bus: InProcessBus
    store: EventStore
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    projections: threading.Thread | None = None
    stop_projections: threading.Event = field(default_factory=threading.Event)
    own_redis: RedisClient | None = None  # a client of its own, closed with it

    async def idle(self) -> bool:
        """Tell whether every committed event has reached the event store."""
        # NOTE: an entry leaves the outbox only once it is on the bus, and a bus
        # message is acknowledged only once its events are in the store.
        return self.bus.unsettled == 0 and await self.outbox.length() == 0

    async def close(self, drain_seconds: float = 10.0) -> None:
        """Let committed events reach the store, then stop and close it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_seconds
        # NOTE: polled, because "idle" spans Redis, the queues and the recorder.
        while loop.time() < deadline and not await self.idle():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        self.stop.set()
        await self.bus.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.projections is not None:
            self.stop_projections.set()
            await asyncio.to_thread(self.projections.join)
        await asyncio.to_thread(self.store.close)
        if self.own_redis is not None:
            await self.own_redis.aclose()


# How long a stopping `serve` lets the projections catch up with the last events.
PROJECTIONS_DRAIN_SECONDS = 10.0


async def start_embedded_pipeline(
    settings: Settings,
    redis: RedisClient,
    drain_seconds: float = PROJECTIONS_DRAIN_SECONDS,
) -> EmbeddedPipeline:
    """Start relay and worker as tasks of this process.

    `redis` is the fast lane's client; on a real Redis the relay and the
    Navigator take one of their own, with a socket timeout: the fast lane's runs
    without one (its session store bounds each call), and a relay read left
    waiting on a dead connection would hold every event back.
    """
    from tutorlane.bootstrap import connect_redis

    own_redis = connect_redis(settings) if settings.redis_url is not None else None
    redis = own_redis or redis
    outbox = RedisEventOutbox(redis, settings.shards)
    await outbox.ensure_groups()
    bus = InProcessBus(settings.queues)
    store = await open_store(settings)
    recorder = EventRecorder(store, bus)
    batcher = Batcher(recorder)
    await bus.start(batcher.on_delivery)

    # In-process queues cost next to nothing per publish: no need to linger.
    relay = EventRelay(outbox, bus, consumer_name(), block_ms=100, linger_seconds=0.0)
    pipeline = EmbeddedPipeline(outbox, relay, batcher, bus, store, own_redis=own_redis)
    pipeline.tasks = [
        asyncio.create_task(pipeline.relay.run(pipeline.stop)),
        asyncio.create_task(batcher.run()),
    ]
    # NOTE: a thread, because the runner's database work is synchronous.
    pipeline.projections = threading.Thread(
        target=run_projections,
        args=(settings, pipeline.stop_projections),
        kwargs={
            "redis": redis,
            "loop": asyncio.get_running_loop(),
            "drain_seconds": drain_seconds,
        },
        name="projections",
        daemon=True,
    )
    pipeline.projections.start()
    return pipeline


async def run_relay(settings: Settings, batch: int, stop: asyncio.Event) -> None:
    """Relay the Redis event outbox to RabbitMQ until `stop` is set."""
    assert settings.redis_url and settings.amqp_url
    # NOTE: longer than the relay's blocking reads, so that none of them times out.
    redis: RedisClient
    if settings.redis_cluster:
        redis = RedisCluster.from_url(settings.redis_url, socket_timeout=10.0)
    else:
        redis = Redis.from_url(settings.redis_url, socket_timeout=10.0)
    outbox = RedisEventOutbox(redis, settings.shards)
    await outbox.ensure_groups()
    publisher = RabbitMQPublisher(settings.amqp_url, topology(settings))
    relay = EventRelay(outbox, publisher, consumer_name(), batch=batch)
    logger.info(
        "relay started: %d outbox shards -> %d queues", settings.shards, settings.queues
    )
    try:
        await relay.run(stop)
    finally:
        await publisher.close()
        await redis.aclose()
    logger.info("relay stopped: what RabbitMQ confirmed is acknowledged in the outbox")


async def run_worker(
    settings: Settings, batch: int, prefetch: int, stop: asyncio.Event
) -> None:
    """Record events from RabbitMQ into the event store until `stop` is set."""
    assert settings.amqp_url
    store = await open_store(settings)
    dead_letters: EventPublisher = RabbitMQPublisher(
        settings.amqp_url, topology(settings)
    )
    recorder = EventRecorder(store, dead_letters)
    batcher = Batcher(recorder, max_batch=batch)
    consumer = RabbitMQConsumer(settings.amqp_url, topology(settings), prefetch)
    await consumer.start(batcher.on_delivery)
    logger.info(
        "worker started: %d queues -> %s",
        settings.queues,
        settings.describe()["events"],
    )
    recording = asyncio.create_task(batcher.run())
    try:
        await stop.wait()
    finally:
        recording.cancel()
        await consumer.close()
        await asyncio.to_thread(store.close)
    # NOTE: a batch cut short was not acknowledged: RabbitMQ delivers it again.
    logger.info("worker stopped: every acknowledged event is in the event store")


async def replay_dead_letters(settings: Settings, limit: int) -> ReplayOutcome:
    """Send up to `limit` parked messages back to the workers (see the command)."""
    assert settings.amqp_url
    parked = RabbitMQDeadLetters(settings.amqp_url, topology(settings))
    bus = RabbitMQPublisher(settings.amqp_url, topology(settings))
    try:
        return await ReplayDeadLetters(parked, bus).replay(limit)
    finally:
        await parked.close()
        await bus.close()


async def export_dead_letters(
    settings: Settings, limit: int, path: Path, remove: bool
) -> int:
    """Write up to `limit` parked messages to `path` as JSON lines; return how many.

    Each line holds the reason and the message's bytes in base64, as taken. With
    `remove`, they leave the queue once the file is safely on disk; without, they
    stay parked.
    """
    assert settings.amqp_url
    parked = RabbitMQDeadLetters(settings.amqp_url, topology(settings))
    try:
        taken = await parked.take(limit)
        with path.open("xb") as out:
            for message in taken:
                line = {
                    "reason": message.reason,
                    "body": base64.b64encode(message.body).decode(),
                }
                out.write(msgspec.json.encode(line) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        if remove:
            for message in taken:
                await message.settle()
        return len(taken)
    finally:
        await parked.close()


async def parked_reasons(settings: Settings, limit: int) -> Counter[str]:
    """Count up to `limit` parked messages by reason, leaving every one parked."""
    assert settings.amqp_url
    parked = RabbitMQDeadLetters(settings.amqp_url, topology(settings))
    try:
        return Counter(message.reason for message in await parked.take(limit))
    finally:
        await parked.close()
