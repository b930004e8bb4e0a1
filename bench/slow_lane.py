"""Slow lane throughput: events from the Redis outbox through RabbitMQ into MariaDB.

Two ways to load it, with `tutorlane relay`, `tutorlane worker` and `tutorlane
projections run` running:

- drain (the default): fill the event outbox with N answers of S students, and
  their sessions, as the fast lane would commit them; then start the relay and the
  worker and time how long the event store takes to hold all of them;
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
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import redis
import sqlalchemy as sa

from tutorlane.adapters.codecs import encode_events
from tutorlane.adapters.event_store import EventStore, open_event_store
from tutorlane.adapters.rabbitmq import Topology
from tutorlane.adapters.redis_sessions import (
    RedisSessionStore,
    session_value,
    shard_of,
)
from tutorlane.bench.fast_lane import cpu_seconds
from tutorlane.domain.events import AnswerSubmitted, event_id_for
from tutorlane.domain.session import Session, Status

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
SERVER_URL = os.environ.get(
    "BENCH_MARIADB_SERVER", "mysql+mysqldb://root@127.0.0.1:3306"
)
DATABASE = os.environ.get("BENCH_DATABASE", "tutorlane_bench")
DATABASE_URL = f"{SERVER_URL}/{DATABASE}?charset=utf8mb4"
QUEUES = 8
# With --split, two projection runners share the projections: the tables of every
# answer in one, the plans and insights (and the agents) in the other.
RUNNERS: dict[str, dict[str, tuple[str, ...]]] = {
    "one": {"projections": ()},
    "split": {
        "projections_log": ("interaction_log", "knowledge_state"),
        "projections_plans": ("next_steps", "analyst_insights"),
    },
}
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


@dataclass(frozen=True, slots=True)
class Commit:
    """What the fast lane commits with one answer: its event and the new session."""

    events_key: str
    fields: dict[str, str | bytes]
    session_key: str
    session: bytes

    def add_to(self, pipe: redis.client.Pipeline) -> None:
        """Queue the commit's writes on a pipeline."""
        pipe.xadd(self.events_key, self.fields)  # type: ignore[arg-type]
        pipe.set(self.session_key, self.session)


def commits(events: int, students: int) -> Iterator[Commit]:
    """Yield the commits of `events` answers of `students`, in order.

    Each student's session moves on with their answers, as the fast lane's commit
    moves it, so that the Navigator plans for it and writes its plan back.
    """
    keys = RedisSessionStore(redis.asyncio.Redis())  # only for its key names
    per_student = events // students
    for seq in range(1, per_student + 1):
        for number in range(students):
            student = f"bench-student-{number:07d}"
            now = time.time()
            event = AnswerSubmitted(
                event_id=event_id_for(student, f"m-{seq}", seq),
                student=student,
                seq=seq,
                message_id=f"m-{seq}",
                occurred_at=now,
                course="maths-primary",
                node="add-1",
                skill="addition",
                answer="15",
                correct=seq % 3 != 0,
                attempt=1,
                seconds_taken=4.2,
            )
            session = Session(
                version=seq,
                seq=seq,
                status=Status.ACTIVE,
                course="maths-primary",
                node="add-2",
                asked_at=now,
                last_seen=now,
            )
            shard = shard_of(student, keys.shards)
            yield Commit(
                keys.events_key(shard),
                {"s": student, "e": encode_events((event,))},
                keys.session_key(student),
                session_value(session),
            )


def fill_outbox(events: int, students: int) -> None:
    """Commit `events` answers of `students` at once: one outbox entry per answer."""
    client = redis.Redis.from_url(REDIS_URL)
    pipe = client.pipeline(transaction=False)
    for commit in commits(events, students):
        commit.add_to(pipe)
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()


def append_at_rate(events: int, students: int, rate: float) -> float:
    """Commit answers at `rate` a second, in 10 ms batches; return the seconds taken."""
    client = redis.Redis.from_url(REDIS_URL)
    pending = commits(events, students)
    began = time.perf_counter()
    sent = 0
    while sent < events:
        due = int((time.perf_counter() - began) * rate) + 1
        pipe = client.pipeline(transaction=False)
        for commit in itertools.islice(pending, max(0, min(due, events) - sent)):
            commit.add_to(pipe)
        sent += len(pipe) // 2
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
        "--split",
        action="store_true",
        help="two projection runners, each keeping some of the projections",
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
    }
    runners = RUNNERS["split" if args.split else "one"]
    context["processes"] = f"1 relay + 1 worker + {len(runners)} projection runner(s)"

    started = time.perf_counter()
    processes = {
        "relay": start("relay", logs / "relay.log"),
        "worker": start("worker", logs / "worker.log"),
    }
    for name, names in runners.items():
        log = logs / f"{name}.log"
        processes[name] = start("projections", log, "run", *names)
    try:
        if args.rate:
            time.sleep(3.0)  # NOTE: both processes up before the clock starts
            started = time.perf_counter()
            seconds = append_at_rate(total, args.students, args.rate)
            behind = total - store.count()
            wait_recorded(store, total, list(processes.values()), logs)
            drained = time.perf_counter() - started - seconds
            context |= {"mode": "sustained", "offered": f"{args.rate:.0f} events/s"}
        else:
            wait_recorded(store, total, list(processes.values()), logs)
            seconds, behind, drained = time.perf_counter() - started, 0, 0.0
            context |= {"mode": "drain", "includes": "process start-up"}
        elapsed = time.perf_counter() - started
        cpu_recorded = cpu_of(processes)
        wait_projected(store, list(processes.values()), logs)
        projected = time.perf_counter() - started
        cpu_projected = cpu_of(processes)
    finally:
        for process in processes.values():
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
    for name in runners:
        cpu_recorded[name] = cpu_projected[name]
    for name, seconds in cpu_recorded.items():
        micros = seconds / total * 1e6
        report(f"slow_lane_cpu_per_event_{name}", micros, "us", **context)


def cpu_of(processes: dict[str, subprocess.Popen[bytes]]) -> dict[str, float]:
    """Return the CPU seconds used so far by each process, and by this one."""
    used = {name: cpu_seconds([process.pid]) for name, process in processes.items()}
    used["load_generator"] = sum(os.times()[:2])
    return used


if __name__ == "__main__":
    main()
