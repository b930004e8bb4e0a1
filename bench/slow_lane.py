"""Slow lane throughput: events from the Redis outbox through RabbitMQ into MariaDB.

Fills the event outbox with N answers of S students (as the fast lane would commit
them), then starts `tutorlane relay` and `tutorlane worker` and times how long the
event store takes to hold all of them. Prints one JSON line per figure.

    python -m tutorlane.bench.slow_lane --events 200000 --students 20000

Uses Redis database 9, RabbitMQ's default vhost (deleting the tutorlane.* queues)
and a MariaDB database `tutorlane_bench`, all on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aio_pika
import redis
import sqlalchemy as sa

from tutorlane.adapters.codecs import encode_events
from tutorlane.adapters.event_store import open_event_store
from tutorlane.adapters.rabbitmq import Topology
from tutorlane.adapters.redis_sessions import RedisSessionStore, shard_of
from tutorlane.domain.events import AnswerSubmitted, event_id_for

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
SERVER_URL = os.environ.get(
    "BENCH_MARIADB_SERVER", "mysql+mysqldb://root@127.0.0.1:3306"
)
DATABASE_URL = f"{SERVER_URL}/tutorlane_bench?charset=utf8mb4"
QUEUES = 8
TOPOLOGY = Topology("tutorlane-bench", QUEUES)


def report(figure: str, value: float, unit: str, **context: object) -> None:
    """Print one figure as a JSON line."""
    line = {"figure": figure, "value": round(value, 1), "unit": unit, **context}
    print(json.dumps(line), flush=True)


def reset_services() -> None:
    """Empty the bench's Redis database, queues and event store."""
    redis.Redis.from_url(REDIS_URL).flushdb()

    async def delete_queues() -> None:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            await TOPOLOGY.delete(await connection.channel())

    asyncio.run(delete_queues())
    engine = sa.create_engine(SERVER_URL)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP DATABASE IF EXISTS tutorlane_bench"))
        connection.execute(sa.text("CREATE DATABASE tutorlane_bench"))
    engine.dispose()


def fill_outbox(events: int, students: int) -> None:
    """Append `events` answers of `students` to the outbox, one entry per answer."""
    client = redis.Redis.from_url(REDIS_URL)
    keys = RedisSessionStore(redis.asyncio.Redis())  # only for its key names
    per_student = events // students
    pipe = client.pipeline(transaction=False)
    for seq in range(1, per_student + 1):
        for number in range(students):
            student = f"bench-student-{number:07d}"
            event = AnswerSubmitted(
                event_id=event_id_for(student, f"m-{seq}", seq),
                student=student,
                seq=seq,
                message_id=f"m-{seq}",
                occurred_at=time.time(),
                course="maths-primary",
                node="add-1",
                skill="addition",
                answer="15",
                correct=seq % 3 != 0,
                attempt=1,
                seconds_taken=4.2,
            )
            shard = shard_of(student, keys.shards)
            pipe.xadd(
                keys.events_key(shard), {"s": student, "e": encode_events((event,))}
            )
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()


def start(command: str, log: Path) -> subprocess.Popen[bytes]:
    """Start one tutorlane process against the bench's services."""
    env = {
        **os.environ,
        "TUTORLANE_REDIS_URL": REDIS_URL,
        "TUTORLANE_AMQP_URL": AMQP_URL,
        "TUTORLANE_DATABASE_URL": DATABASE_URL,
        "TUTORLANE_QUEUES": str(QUEUES),
        "TUTORLANE_BUS_NAME": TOPOLOGY.name,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tutorlane", command],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--students", type=int, default=20_000)
    args = parser.parse_args()
    total = args.events // args.students * args.students

    reset_services()
    fill_outbox(total, args.students)
    store = open_event_store(DATABASE_URL)
    logs = Path(tempfile.mkdtemp(prefix="bench-slow-lane-"))

    started = time.perf_counter()
    processes = [
        start("relay", logs / "relay.log"),
        start("worker", logs / "worker.log"),
    ]
    try:
        while (recorded := store.count()) < total:
            if any(process.poll() is not None for process in processes):
                raise SystemExit(f"a process died; see {logs}")
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
    finally:
        for process in processes:
            process.terminate()
            process.wait()
        store.close()

    context = {
        "events": recorded,
        "students": args.students,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "processes": "1 relay + 1 worker",
        "includes": "process start-up",
    }
    report("slow_lane_events_per_second", recorded / elapsed, "events/s", **context)
    report("slow_lane_seconds", elapsed, "s", **context)


if __name__ == "__main__":
    main()
