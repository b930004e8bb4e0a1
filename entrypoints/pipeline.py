"""The slow lane's processes: the relay, the worker, and both inside `serve`."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import logging
import os
import socket
import threading
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

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
from tutorlane.commands.record_events import EventRecorder
from tutorlane.commands.relay_events import EventRelay
from tutorlane.commands.replay_dead_letters import ReplayDeadLetters, ReplayOutcome
from tutorlane.entrypoints.projections import run_projections
from tutorlane.entrypoints.settings import Settings
from tutorlane.entrypoints.worker import Batcher

logger = logging.getLogger(__name__)

T = TypeVar("T")


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


class StoppedStarting(Exception):
    """The stop signal came while a process was still starting."""


# How long a start-up step, cancelled by a stop, may take to clean up.
CANCEL_GRACE_SECONDS = 2.0


async def unless_stopped(starting: Awaitable[T], stop: asyncio.Event) -> T:
    """Return what `starting` returns; cancel it and raise if `stop` is set first.

    A service that does not answer keeps its client connecting or retrying for a
    while; a stop meanwhile must not wait for it.
    """
    start = asyncio.ensure_future(starting)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((start, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not start.done():
            start.cancel()
            await asyncio.wait((start,), timeout=CANCEL_GRACE_SECONDS)
    if not start.done() or start.cancelled():
        raise StoppedStarting
    return start.result()


async def _open_store_abandonably(settings: Settings) -> EventStore:
    """Open the event store in a daemon thread, which a stop need not wait for.

    NOTE: not `asyncio.to_thread`: Python waits at exit for the threads of that
    pool, and a database that drops packets holds a connecting thread for minutes.
    """
    opened: concurrent.futures.Future[EventStore] = concurrent.futures.Future()

    def open_it() -> None:
        if not opened.set_running_or_notify_cancel():
            return
        try:
            opened.set_result(open_event_store(settings.event_store_url))
        except Exception as ex:
            opened.set_exception(ex)

    threading.Thread(target=open_it, name="open-event-store", daemon=True).start()
    return await asyncio.wrap_future(opened)


async def run_relay(settings: Settings, batch: int, stop: asyncio.Event) -> None:
    """Relay the Redis event outbox to RabbitMQ until `stop` is set."""
    assert settings.redis_url and settings.amqp_url
    # NOTE: a socket timeout longer than the relay's blocking reads, so that none of
    # them times out; a connect timeout, so that a Redis that drops packets fails
    # the start instead of holding it.
    options: dict[str, Any] = {"socket_timeout": 10.0, "socket_connect_timeout": 5.0}
    redis: RedisClient
    if settings.redis_cluster:
        redis = RedisCluster.from_url(settings.redis_url, **options)
    else:
        redis = Redis.from_url(settings.redis_url, **options)
    outbox = RedisEventOutbox(redis, settings.shards)
    publisher = RabbitMQPublisher(settings.amqp_url, topology(settings))
    try:
        await unless_stopped(outbox.ensure_groups(), stop)
        relay = EventRelay(outbox, publisher, consumer_name(), batch=batch)
        logger.info(
            "relay started: %d outbox shards -> %d queues",
            settings.shards,
            settings.queues,
        )
        await relay.run(stop)
    except StoppedStarting:
        logger.info("relay stopped while connecting to Redis")
        return
    finally:
        await publisher.close()
        await redis.aclose()
    logger.info("relay stopped: what RabbitMQ confirmed is acknowledged in the outbox")


async def run_worker(
    settings: Settings, batch: int, prefetch: int, stop: asyncio.Event
) -> None:
    """Record events from RabbitMQ into the event store until `stop` is set."""
    assert settings.amqp_url
    try:
        store = await unless_stopped(_open_store_abandonably(settings), stop)
    except StoppedStarting:
        logger.info("worker stopped while opening the event store")
        return
    dead_letters = RabbitMQPublisher(settings.amqp_url, topology(settings))
    recorder = EventRecorder(store, dead_letters)
    batcher = Batcher(recorder, max_batch=batch)
    consumer = RabbitMQConsumer(settings.amqp_url, topology(settings), prefetch)
    recording: asyncio.Task[None] | None = None
    try:
        await unless_stopped(consumer.start(batcher.on_delivery), stop)
        logger.info(
            "worker started: %d queues -> %s",
            settings.queues,
            settings.describe()["events"],
        )
        recording = asyncio.create_task(batcher.run())
        await stop.wait()
    except StoppedStarting:
        logger.info("worker stopped while connecting to RabbitMQ")
        return
    finally:
        if recording is not None:
            recording.cancel()
        await consumer.close()
        await dead_letters.close()
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
