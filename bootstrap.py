"""Wiring: builds the fast lane from settings, real services or embedded twins."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from tutorlane.adapters.event_feed import EventStoreHistory
from tutorlane.adapters.event_store import open_event_store
from tutorlane.adapters.flow_files import load_courses
from tutorlane.adapters.pseudonyms import Pseudonymiser, load_or_create_key
from tutorlane.adapters.redis_sessions import (
    COMMAND_TIMEOUT_SECONDS,
    RedisClient,
    RedisSessionStore,
)
from tutorlane.adapters.reply_sink import LocalReplySink
from tutorlane.adapters.swiftchat_client import SwiftChatClient
from tutorlane.commands.deliver_replies import ReplyDelivery
from tutorlane.commands.handle_message import MessageHandler
from tutorlane.commands.ports import ReplySender
from tutorlane.domain.course import Course
from tutorlane.entrypoints.settings import Settings

if TYPE_CHECKING:
    from tutorlane.commands.analyse_student import AnalyseStudent
    from tutorlane.entrypoints.pipeline import EmbeddedPipeline

logger = logging.getLogger(__name__)


class ServiceUnavailable(RuntimeError):
    """A configured service does not answer; the message names it and how to fix it."""


@dataclass
class Runtime:
    """The running fast lane of one process."""

    settings: Settings
    secret: str
    course: Course
    redis: RedisClient
    store: RedisSessionStore
    handler: MessageHandler
    delivery: ReplyDelivery
    sender: ReplySender
    sink: LocalReplySink | None
    pipeline: EmbeddedPipeline | None = None
    history: EventStoreHistory | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def close(self) -> None:
        """Finish replies in flight, stop background work, close connections."""
        await self.delivery.drain()
        if self.pipeline is not None:
            await self.pipeline.close()
        if self.history is not None:
            await asyncio.to_thread(self.history.close)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if isinstance(self.sender, SwiftChatClient):
            await self.sender.close()
        await self.redis.aclose()
        logger.info(
            "fast lane stopped: replies in flight sent%s",
            ", events in flight recorded" if self.pipeline is not None else "",
        )


def webhook_secret(settings: Settings) -> str:
    """Return the configured webhook secret, or make one for this run."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value()
    return secrets.token_urlsafe(18)


def pick_course(settings: Settings) -> Course:
    """Load the courses and return the one students take."""
    courses = load_courses(settings.flows)
    return courses.get("maths-primary") or next(iter(courses.values()))


# NOTE: a redis-py pool fails at once ("Too many connections") when all of its
# connections are busy, and its blocking pool costs ~30 us of CPU per command (a
# condition and a timeout around every checkout). So the session store lets at most
# REDIS_CONNECTIONS of its commands be in flight (a burst waits its turn), and the
# pool has room for those and for the sweeper, confirms and health checks beside.
REDIS_CONNECTIONS = 128
REDIS_POOL_SIZE = REDIS_CONNECTIONS + 64


def connect_redis(
    settings: Settings, socket_timeout: float | None = 5.0
) -> RedisClient:
    """Return a client of the configured Redis, or of an in-process fakeredis.

    Without a `socket_timeout` the caller bounds every round trip itself.
    """
    if settings.redis_url is None:
        import fakeredis

        client: Redis = fakeredis.FakeAsyncRedis(max_connections=REDIS_POOL_SIZE)
        return client
    options: dict[str, Any] = {
        "max_connections": REDIS_POOL_SIZE,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": 3.0,
    }
    if settings.redis_cluster:
        # Any node's URL will do: the client finds the others and their slots.
        return RedisCluster.from_url(settings.redis_url, **options)
    return Redis.from_url(settings.redis_url, **options)


def make_pseudonymiser(settings: Settings) -> Pseudonymiser:
    """Return the pseudonymiser, with the configured key or the one kept in var/."""
    if settings.pseudonym_key is not None:
        return Pseudonymiser(settings.pseudonym_key.get_secret_value().encode())
    return Pseudonymiser(load_or_create_key(settings.var_dir / "pseudonym.key"))


def make_sender(settings: Settings) -> tuple[ReplySender, LocalReplySink | None]:
    """Return the SwiftChat API client when configured, else the local sink."""
    if settings.swiftchat_base_url is None:
        sink = LocalReplySink()
        return sink, sink
    api_key = settings.swiftchat_api_key
    client = SwiftChatClient(
        settings.swiftchat_base_url,
        settings.swiftchat_bot_id or "",
        api_key.get_secret_value() if api_key else "",
        rate_per_second=settings.swiftchat_rate_per_second,
    )
    return client, None


async def start_runtime(settings: Settings, secret: str | None = None) -> Runtime:
    """Connect to the services and start the background work of one process."""
    course = pick_course(settings)
    # NOTE: the session store and the health check bound their own round trips.
    redis = connect_redis(settings, socket_timeout=None)
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
            await redis.ping()
    except Exception as ex:
        await redis.aclose()
        raise ServiceUnavailable(
            f"Redis at {settings.describe()['sessions']} does not answer ({ex}); "
            "start it or unset TUTORLANE_REDIS_URL to use the embedded default"
        ) from None

    store = RedisSessionStore(
        redis, shards=settings.shards, max_in_flight=REDIS_CONNECTIONS
    )
    handler = MessageHandler(
        store,
        course,
        make_pseudonymiser(settings),
        inactivity_seconds=settings.inactivity_minutes * 60,
    )
    sender, sink = make_sender(settings)
    owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    delivery = ReplyDelivery(store, sender, owner)
    runtime = Runtime(
        settings=settings,
        secret=secret or webhook_secret(settings),
        course=course,
        redis=redis,
        store=store,
        handler=handler,
        delivery=delivery,
        sender=sender,
        sink=sink,
    )
    runtime.tasks.append(asyncio.create_task(delivery.run_sweeper()))
    if settings.amqp_url is None:
        # With no RabbitMQ, this process also carries events to the event store.
        from tutorlane.entrypoints.pipeline import start_embedded_pipeline

        runtime.pipeline = await start_embedded_pipeline(settings, redis)
        events = runtime.pipeline.store
        handler.recorded = EventStoreHistory(lambda: events)
    elif settings.database_url:
        # NOTE: opened on first use, so that chat starts while the database is away.
        runtime.history = EventStoreHistory(
            functools.partial(open_event_store, settings.event_store_url)
        )
        handler.recorded = runtime.history
    logger.info("fast lane started: course=%s shards=%d", course.id, settings.shards)
    return runtime


def build_analysis(settings: Settings, course: Course) -> AnalyseStudent | None:
    """Return the Analyst's use case as configured, or None when it is off.

    With `ANTHROPIC_API_KEY` it asks Anthropic's Messages API; without, the
    rule-based stand-in (or nothing, with `TUTORLANE_ANALYST_STAND_IN=false`).
    Says which in the log, once: call it once per process.
    """
    from tutorlane.adapters.anthropic_analyst import DEFAULT_MODEL, AnthropicAnalyst
    from tutorlane.adapters.rule_based_analyst import RuleBasedAnalyst
    from tutorlane.commands.analyse_student import AnalyseStudent
    from tutorlane.commands.ports import Analyst
    from tutorlane.domain.analysis import AnalystBudget, AnalystLimits

    analyst: Analyst
    if settings.anthropic_api_key is not None:
        analyst = AnthropicAnalyst(
            settings.anthropic_api_key.get_secret_value(),
            model=settings.analyst_model or DEFAULT_MODEL,
            base_url=settings.anthropic_base_url,
            timeout=settings.analyst_timeout_seconds,
            max_retries=settings.analyst_max_retries,
        )
        logger.info("Analyst: Anthropic Messages API, model %s", analyst.model)
    elif settings.analyst_stand_in:
        analyst = RuleBasedAnalyst()
        logger.info("Analyst: no ANTHROPIC_API_KEY, using the rule-based stand-in")
    else:
        logger.info("Analyst: off (no ANTHROPIC_API_KEY)")
        return None

    limits = AnalystLimits(
        per_student_per_day=settings.analyst_calls_per_student_per_day,
        debounce_seconds=settings.analyst_debounce_minutes * 60,
        per_minute=settings.analyst_calls_per_minute,
    )
    return AnalyseStudent(analyst, course, AnalystBudget(limits))
