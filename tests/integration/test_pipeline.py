"""The slow lane on real Redis, RabbitMQ and MariaDB: every answer recorded once.

Each test runs `tutorlane serve`, `relay` and `worker` as processes, sends students'
messages through the webhook, and checks that the event store ends with exactly the
events the sessions committed, in each student's order, whatever happened between.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import httpx
import pytest
import redis
import sqlalchemy as sa

from tutorlane.adapters.event_store import open_event_store
from tutorlane.adapters.pseudonyms import Pseudonymiser
from tutorlane.adapters.rabbitmq import Topology
from tutorlane.adapters.redis_event_outbox import RedisEventOutbox
from tutorlane.adapters.redis_sessions import RedisSessionStore
from tutorlane.tests.processes import Process, free_port, http_up, wait_for
from tutorlane.tests.proxy import TcpProxy

SECRET = "pipeline-secret-0123456789"
PSEUDONYM_KEY = "pipeline-test-pseudonym-key-0123"
QUEUES = 4
SCRIPT = ["hi", "500", "7", "hint", "0", "skip", "6,509", "help", "12"]
SCRIPT_ANSWERS = 5  # the messages of SCRIPT that answer a question
_phones = itertools.count(918800000000)


def with_port(url: str, port: int) -> str:
    """Return `url` pointing at 127.0.0.1:`port` instead."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


# A name of its own keeps the test off any deployment's queues on the same broker.
TOPOLOGY = Topology(f"tutorlane-test-{os.getpid()}", QUEUES)


async def _delete_queues(url: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        await TOPOLOGY.delete(await connection.channel())


class Pipeline:
    """serve + relay + worker against real services, with knobs to break them."""

    def __init__(self, tmp: Path, redis_url: str, amqp_url: str, database_url: str):
        self.redis_url = redis_url
        self.database_url = database_url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.phones: list[str] = []
        common = {
            "TUTORLANE_REDIS_URL": redis_url,
            "TUTORLANE_WEBHOOK_SECRET": SECRET,
            "TUTORLANE_PSEUDONYM_KEY": PSEUDONYM_KEY,
            "TUTORLANE_QUEUES": str(QUEUES),
            "TUTORLANE_BUS_NAME": TOPOLOGY.name,
            "TUTORLANE_VAR": str(tmp / "var"),
        }
        self.amqp_proxy = TcpProxy("127.0.0.1", urlsplit(amqp_url).port or 5672)
        self.database_proxy = TcpProxy("127.0.0.1", urlsplit(database_url).port or 3306)
        self.amqp_proxy.restore()
        self.database_proxy.restore()
        worker_database = with_port(database_url, self.database_proxy.port)
        self.serve = Process(
            ["serve", "--port", str(self.port)],
            {
                **common,
                "TUTORLANE_AMQP_URL": amqp_url,
                "TUTORLANE_DATABASE_URL": worker_database,
            },
            tmp / "serve.log",
        )
        self.relay = Process(
            ["relay"],
            {**common, "TUTORLANE_AMQP_URL": with_port(amqp_url, self.amqp_proxy.port)},
            tmp / "relay.log",
        )
        self.worker = Process(
            ["worker", "--batch", "200"],
            {
                **common,
                "TUTORLANE_AMQP_URL": amqp_url,
                "TUTORLANE_DATABASE_URL": worker_database,
            },
            tmp / "worker.log",
        )

        # Two runners share the projections, as on a deployment spread over cores;
        # the agents run beside next_steps.
        self.projections = Process(
            ["projections", "run", "next_steps", "analyst_insights"],
            {**common, "TUTORLANE_DATABASE_URL": database_url},
            tmp / "projections.log",
        )
        self.log_projections = Process(
            ["projections", "run", "interaction_log", "knowledge_state"],
            {**common, "TUTORLANE_DATABASE_URL": database_url},
            tmp / "log-projections.log",
        )

    def start(self) -> None:
        self.serve.start()
        self.serve.wait_until(http_up(f"{self.base}/healthz"))
        self.relay.start()
        self.worker.start()
        self.projections.start()
        self.log_projections.start()

    def stop(self) -> None:
        processes = (self.serve, self.relay, self.worker)
        for process in (*processes, self.projections, self.log_projections):
            process.stop()
        self.amqp_proxy.close()
        self.database_proxy.close()

    def chat(self, students: int) -> list[str]:
        """Play the script for `students` new students at once; all must get 200."""
        phones = [f"+{next(_phones)}" for _ in range(students)]
        self.phones.extend(phones)
        asyncio.run(self._chat(phones, SCRIPT, "first"))
        return phones

    def chat_again(self, phones: list[str], script: list[str], round: str) -> None:
        """Play more messages for students who chatted before; all must get 200."""
        asyncio.run(self._chat(phones, script, round))

    async def _chat(self, phones: list[str], script: list[str], round: str) -> None:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:

            async def play(phone: str) -> None:
                for step, text in enumerate(script):
                    response = await self.send(http, phone, f"{round}-{step}", text)
                    assert response.status_code == 200, response.text

            await asyncio.gather(*(play(phone) for phone in phones))

    async def send(
        self, http: httpx.AsyncClient, phone: str, message_id: str, text: str
    ) -> httpx.Response:
        """Send one text message of a student to the webhook."""
        body = {
            "from": phone,
            "type": "text",
            "timestamp": "1733212800",
            "message_id": f"{phone}-{message_id}",
            "text": {"body": text},
        }
        return await http.post(f"{self.base}/webhooks/swiftchat/{SECRET}", json=body)

    def send_one(self, phone: str, message_id: str, text: str) -> httpx.Response:
        """Send one message and return the webhook's response."""

        async def send() -> httpx.Response:
            async with httpx.AsyncClient(timeout=30) as http:
                return await self.send(http, phone, message_id, text)

        return asyncio.run(send())

    def lose_sessions(self, phones: list[str]) -> None:
        """Delete these students' sessions from Redis, as a failover might."""
        pseudonymise = Pseudonymiser(PSEUDONYM_KEY.encode())
        client = redis.Redis.from_url(self.redis_url)
        store = RedisSessionStore(redis.asyncio.Redis.from_url(self.redis_url))
        client.delete(*(store.session_key(pseudonymise(phone)) for phone in phones))
        client.close()

    def committed(self) -> dict[str, int]:
        """Return each student's last committed sequence number, from the sessions."""
        pseudonymise = Pseudonymiser(PSEUDONYM_KEY.encode())
        return asyncio.run(self._committed([pseudonymise(p) for p in self.phones]))

    async def _committed(self, students: list[str]) -> dict[str, int]:
        client = redis.asyncio.Redis.from_url(self.redis_url)
        try:
            store = RedisSessionStore(client)
            return {s: (await store.load(s)).seq for s in students}
        finally:
            await client.aclose()

    def places(self, phones: list[str]) -> list[tuple[str, str]]:
        """Return each student's course and question, from their sessions."""
        pseudonymise = Pseudonymiser(PSEUDONYM_KEY.encode())

        async def load() -> list[tuple[str, str]]:
            client = redis.asyncio.Redis.from_url(self.redis_url)
            try:
                store = RedisSessionStore(client)
                sessions = [await store.load(pseudonymise(p)) for p in phones]
                return [(session.course, session.node) for session in sessions]
            finally:
                await client.aclose()

        return asyncio.run(load())

    def count(self, table: str) -> int:
        """Return the rows of a read model."""
        engine = sa.create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                statement = sa.text(f"SELECT COUNT(*) FROM {table}")
                return int(connection.execute(statement).scalar_one())
        finally:
            engine.dispose()

    def plans(self, phones: list[str]) -> list[tuple[str, ...]]:
        """Return each student's plan, from their sessions."""
        pseudonymise = Pseudonymiser(PSEUDONYM_KEY.encode())

        async def load() -> list[tuple[str, ...]]:
            client = redis.asyncio.Redis.from_url(self.redis_url)
            try:
                store = RedisSessionStore(client)
                return [(await store.load(pseudonymise(p))).plan for p in phones]
            finally:
                await client.aclose()

        return asyncio.run(load())

    def outbox_length(self) -> int:
        client = redis.asyncio.Redis.from_url(self.redis_url)

        async def length() -> int:
            try:
                return await RedisEventOutbox(client).length()
            finally:
                await client.aclose()

        return asyncio.run(length())

    def recorded(self) -> dict[str, list[int]]:
        """Return every student's recorded sequence numbers, in log order."""
        store = open_event_store(self.database_url)
        try:
            seqs: dict[str, list[int]] = defaultdict(list)
            for event in store.read(0, 10_000_000):
                seqs[event.student].append(event.seq)
            return seqs
        finally:
            store.close()

    def wait_until_recorded(self, seconds: float = 60) -> None:
        expected = sum(self.committed().values())
        wait_for(
            lambda: sum(map(len, self.recorded().values())) >= expected,
            seconds,
            on_each=self.worker.check_running,
            what=f"{expected} events in the store",
        )

    def assert_exactly_once_in_order(self) -> None:
        committed = self.committed()
        recorded = self.recorded()
        assert sum(committed.values()) > 0
        for student, last in committed.items():
            assert recorded.get(student) == list(range(1, last + 1)), student
        assert set(recorded) <= set(committed), "no events of unknown students"


@pytest.fixture
def pipeline(
    tmp_path: Path, redis_url: str, rabbitmq_url: str, mariadb_database_url: str
) -> Iterator[Pipeline]:
    redis.Redis.from_url(redis_url).flushdb()
    asyncio.run(_delete_queues(rabbitmq_url))
    running = Pipeline(tmp_path, redis_url, rabbitmq_url, mariadb_database_url)
    running.start()
    yield running
    running.stop()
    asyncio.run(_delete_queues(rabbitmq_url))


def test_every_answer_reaches_the_event_store_once_in_order(pipeline: Pipeline) -> None:
    phones = pipeline.chat(students=60)

    pipeline.wait_until_recorded()
    pipeline.assert_exactly_once_in_order()
    assert pipeline.outbox_length() == 0

    # ... and the read models, with plans written back into the sessions.
    # Each projection follows the log at its own pace: wait for every one.
    answers = SCRIPT_ANSWERS * len(phones)
    wait_for(
        lambda: pipeline.count("interaction_log") == answers,
        60,
        on_each=pipeline.log_projections.check_running,
        what=f"{answers} rows in interaction_log",
    )
    wait_for(
        lambda: pipeline.count("next_steps") == len(phones),
        60,
        on_each=pipeline.projections.check_running,
        what=f"a plan for each of {len(phones)} students in next_steps",
    )
    assert pipeline.count("knowledge_state") > 0
    wait_for(
        lambda: all(pipeline.plans(phones)), 30, what="every student's plan in Redis"
    )


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(
    pipeline: Pipeline,
) -> None:
    for _ in range(3):
        pipeline.chat(students=40)
        pipeline.worker.kill()
        pipeline.worker.start()

    pipeline.wait_until_recorded()
    pipeline.assert_exactly_once_in_order()


def test_chat_goes_on_while_rabbitmq_is_away_and_events_arrive_after(
    pipeline: Pipeline,
) -> None:
    pipeline.chat(students=10)
    pipeline.wait_until_recorded()

    pipeline.amqp_proxy.cut()
    pipeline.chat(students=30)
    assert pipeline.outbox_length() > 0, "events wait in the Redis outbox"

    pipeline.amqp_proxy.restore()
    pipeline.wait_until_recorded(seconds=90)
    pipeline.assert_exactly_once_in_order()
    wait_for(lambda: pipeline.outbox_length() == 0, 30, what="outbox drained")


def test_chat_goes_on_while_mariadb_is_away_and_events_arrive_after(
    pipeline: Pipeline,
) -> None:
    phones = pipeline.chat(students=30)
    pipeline.wait_until_recorded()
    before = sum(map(len, pipeline.recorded().values()))

    pipeline.database_proxy.cut()
    pipeline.chat_again(phones, ["start", "500", "7", "hint"], "while-away")
    wait_for(lambda: pipeline.outbox_length() == 0, 30, what="relayed to RabbitMQ")
    assert sum(map(len, pipeline.recorded().values())) == before

    pipeline.database_proxy.restore()
    pipeline.wait_until_recorded(seconds=90)
    pipeline.assert_exactly_once_in_order()


def test_a_lost_session_waits_for_the_event_store_then_carries_on(
    pipeline: Pipeline,
) -> None:
    phones = pipeline.chat(students=5)
    pipeline.wait_until_recorded()
    places = pipeline.places(phones)
    pipeline.lose_sessions(phones)

    pipeline.database_proxy.cut()
    refused = pipeline.send_one(phones[0], "after-loss", "hint")
    newcomer = pipeline.send_one(f"+{next(_phones)}", "first", "hi")
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "30"
    assert newcomer.status_code == 503

    pipeline.database_proxy.restore()
    # SwiftChat's retries of the refused message, and the others' next messages.
    assert pipeline.send_one(phones[0], "after-loss", "hint").status_code == 200
    pipeline.chat_again(phones[1:], ["hint"], "after-loss")
    assert pipeline.places(phones) == places
    pipeline.wait_until_recorded(seconds=60)
    pipeline.assert_exactly_once_in_order()
