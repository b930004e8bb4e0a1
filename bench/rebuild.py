"""Projection rebuild rate: events per second replayed from the log into new tables.

Fills a MariaDB event store with N answers of S students (skipped when it already
holds at least N events, so a second run measures the rebuild alone), then rebuilds
each projection with `ProjectionRebuild`, as `tutorlane projections rebuild` does.
Prints one JSON line per figure.

    python -m tutorlane.bench.rebuild --events 1000000 --students 20000

Uses the MariaDB database `tutorlane_bench_rebuild` on 127.0.0.1 unless
BENCH_MARIADB_SERVER says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time

import sqlalchemy as sa

from tutorlane.adapters.codecs import event_to_json, event_topic
from tutorlane.adapters.event_feed import EventStoreFeed
from tutorlane.adapters.event_store import (
    EventStore,
    create_event_store_engine,
    open_event_store,
)
from tutorlane.adapters.flow_files import SHIPPED_FLOWS, load_courses
from tutorlane.adapters.sql_projections import SQLProjectionStore
from tutorlane.commands.ports import NewRecord
from tutorlane.domain.events import AnswerSubmitted, event_id_for
from tutorlane.projections.interaction_log import InteractionLogProjection
from tutorlane.projections.knowledge_state import (
    KnowledgeStateProjection,
    SkillParameters,
)
from tutorlane.projections.rebuild import ProjectionRebuild

SERVER_URL = os.environ.get(
    "BENCH_MARIADB_SERVER", "mysql+mysqldb://root@127.0.0.1:3306"
)
DATABASE = "tutorlane_bench_rebuild"
DATABASE_URL = f"{SERVER_URL}/{DATABASE}?charset=utf8mb4"
APPEND_BATCH = 5000


def report(figure: str, value: float, unit: str, **context: object) -> None:
    """Print one figure as a JSON line."""
    line = {"figure": figure, "value": round(value, 1), "unit": unit, **context}
    print(json.dumps(line), flush=True)


def fill(store: EventStore, events: int, students: int) -> None:
    """Append answers of `students` students, round-robin, in batches."""
    courses = load_courses(SHIPPED_FLOWS)
    course = next(iter(courses.values()))
    nodes = list(course.nodes.values())
    chooser = random.Random(1)
    seqs = [0] * students
    batch: list[NewRecord] = []
    for index in range(events):
        number = index % students
        seqs[number] += 1
        student = f"bench-{number:06d}"
        node = chooser.choice(nodes)
        event = AnswerSubmitted(
            event_id=event_id_for(student, f"m{seqs[number]}", seqs[number]),
            student=student,
            seq=seqs[number],
            message_id=f"m{seqs[number]}",
            occurred_at=1_780_000_000.0 + index,
            course=course.id,
            node=node.id,
            skill=node.skill,
            answer="42",
            correct=chooser.random() < 0.7,
            attempt=1,
            seconds_taken=4.0,
        )
        batch.append(
            NewRecord(student, event.seq, event_topic(event), event_to_json(event))
        )
        if len(batch) == APPEND_BATCH:
            store.append(batch)
            batch = []
    store.append(batch)


def main() -> None:
    """Fill the store if needed, rebuild each projection, print the rates."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--students", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=5000)
    options = parser.parse_args()

    server = sa.create_engine(SERVER_URL)
    with server.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS {DATABASE}"))
    server.dispose()
    store = open_event_store(DATABASE_URL)
    if store.count() < options.events:
        started = time.monotonic()
        fill(store, options.events - store.count(), options.students)
        report("fill", options.events / (time.monotonic() - started), "events/s")

    courses = load_courses(SHIPPED_FLOWS)
    tables = SQLProjectionStore(create_event_store_engine(DATABASE_URL))
    feed = EventStoreFeed(store)
    context = {
        "events": store.count(),
        "batch": options.batch,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load": round(os.getloadavg()[0], 1),
    }
    for projection in (
        InteractionLogProjection(),
        KnowledgeStateProjection(SkillParameters(courses)),
    ):
        rebuild = ProjectionRebuild(
            projection, tables, feed, "bench", batch_size=options.batch
        )
        result = rebuild.run()
        report(
            f"rebuild {projection.name}",
            result.events / result.seconds,
            "events/s",
            seconds=round(result.seconds, 1),
            **context,
        )
    tables.close()
    store.close()


if __name__ == "__main__":
    main()
