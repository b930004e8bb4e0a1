"""Slow lane throughput: events from the Redis outbox through RabbitMQ into MariaDB.

Two ways to load it, with `tutorlane relay`, `tutorlane worker` and `tutorlane
projections run` running:

- drain (the default): fill the event outbox with N answers of S students (as the
  fast lane would commit them), then start the relay and the worker and time how
  long the event store takes to hold all of them;
- sustained (`--rate R`): start them first, then append R events a second to the
  outbox for N/R seconds, and report how far behind the event store is when the
  appending stops (the lag, in events and in seconds of drain) and how long it
  takes to catch up.

The projections (interaction log, knowledge state, next steps, insights) follow the
event store; the last figures say when every one had applied every event, counted
from the same start.

Prints one JSON line per figure, the lag last.

    python -m tutorlane.bench.slow_lane --events 200000 --students 20000
    python -m tutorlane.bench.slow_lane --events 100000 --rate 5000

Uses Redis database 9 (`BENCH_REDIS_URL`), RabbitMQ's default vhost with its own
exchanges and queues (`BENCH_BUS_NAME`, deleted first) and a MariaDB database
`tutorlane_bench` (`BENCH_DATABASE`, dropped and created), all on 127.0.0.1 unless
told otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import redis
import sqlalchemy as sa

from tutorlane.adapters.codecs import encode_events
from tutorlane.adapters.event_store import EventStore, open_event_store
from tutorlane.adapters.rabbitmq import Topology
from tutorlane.adapters.redis_sessions import RedisSessionStore, shard_of
from tutorlane.bench.fast_lane import cpu_seconds
from tutorlane.domain.events import AnswerSubmitted, event_id_for

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
SERVER_URL = os.environ.get(
    "BENCH_MARIADB_SERVER", "mysql+mysqldb://root@127.0.0.1:3306"
)
DATABASE = os.environ.get("BENCH_DATABASE", "tutorlane_bench")
DATABASE_URL = f"{SERVER_URL}/{DATABASE}?charset=utf8mb4"
QUEUES = 8
PROCESS_NAMES = ("relay", "worker", "projections")
TOPOLOGY = Topology(os.environ.get("BENCH_BUS_NAME", "tutorlane-bench"), QUEUES)


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
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{DATABASE}`"))
        connection.execute(sa.text(f"CREATE DATABASE `{DATABASE}`"))
    engine.dispose()


def outbox_entries(
    events: int, students: int
) -> Iterator[tuple[str, dict[str, str | bytes]]]:
    """Yield (stream key, fields) of `events` answers of `students`, in order."""
    keys = RedisSessionStore(redis.asyncio.Redis())  # only for its key names
    per_student = events // students
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
            yield keys.events_key(shard), {"s": student, "e": encode_events((event,))}


def fill_outbox(events: int, students: int) -> None:
    """Append `events` answers of `students` to the outbox, one entry per answer."""
    client = redis.Redis.from_url(REDIS_URL)
    pipe = client.pipeline(transaction=False)
    for key, fields in outbox_entries(events, students):
        pipe.xadd(key, fields)  # type: ignore[arg-type]
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()


def append_at_rate(events: int, students: int, rate: float) -> float:
    """Append events at `rate` a second, in 10 ms batches; return the seconds taken."""
    client = redis.Redis.from_url(REDIS_URL)
    entries = outbox_entries(events, students)
    began = time.perf_counter()
    sent = 0
    while sent < events:
        due = int((time.perf_counter() - began) * rate) + 1
        pipe = client.pipeline(transaction=False)
        for key, fields in itertools.islice(entries, max(0, min(due, events) - sent)):
            pipe.xadd(key, fields)  # type: ignore[arg-type]
        sent += len(pipe)
        pipe.execute()
        time.sleep(0.01)
    return time.perf_counter() - began


def start(command: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
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
        [sys.executable, "-m", "tutorlane", command, *args],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def wait_recorded(
    store: EventStore, total: int, processes: list[subprocess.Popen[bytes]], logs: Path
) -> None:
    """Wait until the event store holds `total` events."""
    while store.count() < total:
        if any(process.poll() is not None for process in processes):
            raise SystemExit(f"a process died; see {logs}")
        time.sleep(0.25)


def wait_projected(
    store: EventStore, processes: list[subprocess.Popen[bytes]], logs: Path
) -> None:
    """Wait until every projection has applied every event in the store."""
    engine = sa.create_engine(DATABASE_URL)
    head = store.max_notification_id()
    try:
        while True:
            with engine.connect() as connection:
                positions = connection.execute(
                    sa.text("SELECT MIN(position) FROM projection_state")
                ).scalar_one()
            if positions is not None and positions >= head:
                return
            if any(process.poll() is not None for process in processes):
                raise SystemExit(f"a process died; see {logs}")
            time.sleep(0.25)
    finally:
        engine.dispose()


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="answers to carry")
    parser.add_argument(
        "--students", type=int, default=20_000, help="students they belong to"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="events/s offered while the lane runs (default: fill, then drain)",
    )
    args = parser.parse_args()
    total = args.events // args.students * args.students

    reset_services()
    if not args.rate:
        fill_outbox(total, args.students)
    store = open_event_store(DATABASE_URL)
    logs = Path(tempfile.mkdtemp(prefix="bench-slow-lane-"))
    context: dict[str, object] = {
        "events": total,
        "students": args.students,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "processes": "1 relay + 1 worker + 1 projection runner",
    }

    started = time.perf_counter()
    processes = [
        start("relay", logs / "relay.log"),
        start("worker", logs / "worker.log"),
        start("projections", logs / "projections.log", "run"),
    ]  # in the order of PROCESS_NAMES
    try:
        if args.rate:
            time.sleep(3.0)  # NOTE: both processes up before the clock starts
            started = time.perf_counter()
            seconds = append_at_rate(total, args.students, args.rate)
            behind = total - store.count()
            wait_recorded(store, total, processes, logs)
            drained = time.perf_counter() - started - seconds
            context |= {"mode": "sustained", "offered": f"{args.rate:.0f} events/s"}
        else:
            wait_recorded(store, total, processes, logs)
            seconds, behind, drained = time.perf_counter() - started, 0, 0.0
            context |= {"mode": "drain", "includes": "process start-up"}
        elapsed = time.perf_counter() - started
        cpu_recorded = cpu_of(processes)
        wait_projected(store, processes, logs)
        projected = time.perf_counter() - started
        cpu_projected = cpu_of(processes)
    finally:
        for process in processes:
            process.terminate()
            process.wait()
        store.close()

    context["load"] = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    report("slow_lane_events_per_second", total / elapsed, "events/s", **context)
    report("slow_lane_seconds", elapsed, "s", **context)
    report("slow_lane_lag_events_at_end", behind, "events", **context)
    report("slow_lane_lag_seconds_at_end", drained, "s", **context)
    report("projections_events_per_second", total / projected, "events/s", **context)
    report("projections_lag_seconds_after_store", projected - elapsed, "s", **context)
    # CPU per event of each process, until the store had every event (the runner:
    # until it had applied every one); the load generator is this process.
    cpu_recorded["projections"] = cpu_projected["projections"]
    for name, seconds in cpu_recorded.items():
        micros = seconds / total * 1e6
        report(f"slow_lane_cpu_per_event_{name}", micros, "us", **context)


def cpu_of(processes: list[subprocess.Popen[bytes]]) -> dict[str, float]:
    """Return the CPU seconds used so far by each process, and by this one."""
    used = {
        name: cpu_seconds([process.pid])
        for name, process in zip(PROCESS_NAMES, processes, strict=True)
    }
    used["load_generator"] = sum(os.times()[:2])
    return used


if __name__ == "__main__":
    main()
