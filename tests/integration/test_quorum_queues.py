"""With TUTORLANE_QUORUM_QUEUES=true, the relay and the worker use quorum queues.

Runs `tutorlane relay` and `tutorlane worker` as processes on the local RabbitMQ,
with a topology named for this test; checks that the queues they declared are
quorum queues (the broker refuses to redeclare them as classic ones, and
`rabbitmqctl` lists their type when it is at hand) and that events flow through
them into the event store.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import aiormq
import pytest
from redis.asyncio import Redis

from tutorlane.adapters.rabbitmq import Topology
from tutorlane.adapters.redis_sessions import RedisSessionStore
from tutorlane.commands.handle_message import MessageHandler
from tutorlane.domain.course import parse_course
from tutorlane.domain.messages import Inbound, Kind
from tutorlane.tests.courses import TINY_COURSE
from tutorlane.tests.processes import Process, wait_for

TOPOLOGY = Topology(f"tutorlane-quorum-test-{os.getpid()}", 2, quorum=True)
STUDENTS = 12


async def _delete_topology(url: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        await TOPOLOGY.delete(await connection.channel())


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


async def _commit_greetings(redis_client: Redis) -> None:
    """Let STUDENTS students say hi: one CourseStarted event each in the outbox."""
    store = RedisSessionStore(redis_client)
    course = parse_course(TINY_COURSE, "tiny.yaml")
    handler = MessageHandler(store, course, lambda phone: f"pseudo-{phone[-4:]}")
    for number in range(STUDENTS):
        phone = f"+91980000{number:04d}"
        await handler.handle(phone, Inbound(f"hi-{number}", Kind.TEXT, "hi"))


async def _queue_type_refused(
    url: str, name: str, arguments: dict[str, Any]
) -> str | None:
    """Redeclare a queue with `arguments`; return the broker's refusal, or None."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, durable=True, arguments=arguments)
        except aiormq.exceptions.ChannelPreconditionFailed as ex:
            return str(ex)
    return None


def _listed_types(amqp_url: str) -> dict[str, str] | None:
    """Return queue name -> type as `rabbitmqctl` lists them, if it is at hand."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        return None
    vhost = unquote(urlsplit(amqp_url).path.lstrip("/")) or "/"
    result = subprocess.run(
        [rabbitmqctl, "list_queues", "-q", "--vhost", vhost, "name", "type"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        return None
    rows = (line.split("\t") for line in result.stdout.splitlines())
    return {row[0]: row[1] for row in rows if len(row) == 2}


async def test_relay_and_worker_carry_events_through_quorum_queues(
    tmp_path: Path, redis_url: str, rabbitmq_url: str, redis_client: Redis
) -> None:
    await _delete_topology(rabbitmq_url)
    await _commit_greetings(redis_client)
    env = {
        "TUTORLANE_REDIS_URL": redis_url,
        "TUTORLANE_AMQP_URL": rabbitmq_url,
        "TUTORLANE_QUORUM_QUEUES": "true",
        "TUTORLANE_BUS_NAME": TOPOLOGY.name,
        "TUTORLANE_QUEUES": str(TOPOLOGY.queues),
        "TUTORLANE_VAR": str(tmp_path / "var"),
    }
    worker = Process(["worker"], env, tmp_path / "worker.log").start()
    relay = Process(["relay"], env, tmp_path / "relay.log").start()
    events_db = tmp_path / "var" / "events.db"

    def recorded() -> int:
        # NOTE: read-only, so as not to race the worker creating its tables.
        try:
            with closing(sqlite3.connect(f"file:{events_db}?mode=ro", uri=True)) as db:
                return int(
                    db.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0]
                )
        except sqlite3.Error:
            return 0

    def both_running() -> None:
        relay.check_running()
        worker.check_running()

    try:
        wait_for(
            lambda: recorded() == STUDENTS,
            60,
            on_each=both_running,
            what=f"{STUDENTS} events in the event store",
        )

        # The same arguments as the topology's, but classic: only the type differs.
        shard = {
            "x-single-active-consumer": True,
            "x-dead-letter-exchange": TOPOLOGY.dead,
            "x-queue-type": "classic",
        }
        names = [TOPOLOGY.queue_name(i) for i in range(TOPOLOGY.queues)]
        checks = [(name, shard) for name in names]
        checks.append((TOPOLOGY.dead, {"x-queue-type": "classic"}))
        for name, arguments in checks:
            refusal = await _queue_type_refused(rabbitmq_url, name, arguments)
            assert refusal is not None, f"{name} accepted being classic"
            assert "x-queue-type" in refusal and "quorum" in refusal
        listed = _listed_types(rabbitmq_url)
        if listed is not None:
            assert {listed.get(name) for name in [*names, TOPOLOGY.dead]} == {"quorum"}
    finally:
        relay.stop()
        worker.stop()
        await _delete_topology(rabbitmq_url)
