"""Redis memory per active session and per outbox entry, before and after trimming.

Plays N students through the real command handler against a real Redis (each
greets and then sends `--messages` answers in all, as the fast lane would; from 16
messages on, a session's window of recent message ids is full and it stops
growing), then measures:

- bytes per session: `MEMORY USAGE` of every session key (key, value and Redis's
  bookkeeping of the key), and the server's `used_memory` growth per student;
- bytes per outbox entry while it waits: the reply and event streams' `MEMORY
  USAGE` divided by their entries;
- bytes per outbox entry after trimming: the same streams once every reply is
  confirmed and every event acknowledged and deleted, as the delivery and the relay
  do; what is left is the streams' skeleton, which does not grow with students.

Prints one JSON line per figure.

    python -m tutorlane.bench.memory --students 20000 --messages 4
    python -m tutorlane.bench.memory --students 20000 --messages 20  # window full

Uses Redis database 10 (`BENCH_REDIS_URL`, flushed). `used_memory` is the whole
server's: on a Redis shared with other work it is only a cross-check.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import time
from typing import Any

from redis.asyncio import Redis

from tutorlane.adapters.pseudonyms import Pseudonymiser
from tutorlane.adapters.redis_event_outbox import RedisEventOutbox
from tutorlane.adapters.redis_sessions import RedisSessionStore
from tutorlane.bootstrap import pick_course
from tutorlane.commands.handle_message import MessageHandler
from tutorlane.domain.messages import Inbound, Kind
from tutorlane.entrypoints.settings import Settings

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
ANSWERS = ["500", "7", "12", "0", "6"]


def report(figure: str, value: float, unit: str, **context: object) -> None:
    """Print one figure as a JSON line."""
    line = {"figure": figure, "value": round(value, 1), "unit": unit, **context}
    print(json.dumps(line), flush=True)


async def used_memory(redis: Redis) -> int:
    """Return the server's used_memory."""
    info: dict[str, Any] = await redis.info("memory")
    return int(info["used_memory"])


async def memory_usage(redis: Redis, keys: list[bytes]) -> int:
    """Return the summed MEMORY USAGE of `keys` (every value sampled in full)."""
    total = 0
    for start in range(0, len(keys), 1000):
        pipe = redis.pipeline(transaction=False)
        for key in keys[start : start + 1000]:
            pipe.memory_usage(key, samples=0)
        total += sum(size or 0 for size in await pipe.execute())
    return total


async def keys_matching(redis: Redis, pattern: str) -> list[bytes]:
    """Return every key of the database matching `pattern`."""
    return [key async for key in redis.scan_iter(match=pattern, count=1000)]


async def play(handler: MessageHandler, students: int, messages: int) -> None:
    """Let each student greet and answer, a few students at a time."""
    sent_at = int(time.time())
    texts = ["hi", *itertools.islice(itertools.cycle(ANSWERS), messages - 1)]

    async def student(number: int) -> None:
        phone = f"+9171{number:08d}"
        for step, text in enumerate(texts):
            message = Inbound(f"m-{number}-{step}", Kind.TEXT, text, sent_at=sent_at)
            await handler.handle(phone, message)

    for start in range(0, students, 200):
        await asyncio.gather(
            *(student(n) for n in range(start, min(start + 200, students)))
        )


async def trim_outbox(store: RedisSessionStore, outbox: RedisEventOutbox) -> None:
    """Confirm every reply and relay every event, as delivery and the relay do."""
    for shard in range(store.shards):
        pending = await store.unconfirmed(shard, time.time() + 60, 1_000_000)
        await asyncio.gather(*(store.confirm(p.student, p.entry_id) for p in pending))
        while entries := await outbox.read(shard, "bench", 1000, 1, pending=False):
            await outbox.acknowledge(shard, [entry.entry_id for entry in entries])


async def measure(students: int, messages: int) -> None:
    """Fill Redis with sessions and the outbox, measure, trim, measure again."""
    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    store = RedisSessionStore(redis)
    outbox = RedisEventOutbox(redis, store.shards)
    await outbox.ensure_groups()
    handler = MessageHandler(store, pick_course(Settings()), Pseudonymiser(b"b" * 32))
    context = {"students": students, "messages_each": messages}

    before = await used_memory(redis)
    await play(handler, students, messages)
    filled = await used_memory(redis)

    sessions = await keys_matching(redis, "tl:*:t:*")
    session_bytes = await memory_usage(redis, sessions)
    replies = [store.replies_key(shard) for shard in range(store.shards)]
    events = [store.events_key(shard) for shard in range(store.shards)]
    reply_entries = sum([await redis.xlen(key) for key in replies])
    event_entries = sum([await redis.xlen(key) for key in events])
    reply_bytes = await memory_usage(redis, [key.encode() for key in replies])
    event_bytes = await memory_usage(redis, [key.encode() for key in events])
    report(
        "session_bytes",
        session_bytes / len(sessions),
        "B/session",
        how="MEMORY USAGE of each session key",
        **context,
    )
    report(
        "reply_entry_bytes_waiting",
        reply_bytes / reply_entries,
        "B/entry",
        entries=reply_entries,
        **context,
    )
    report(
        "event_entry_bytes_waiting",
        event_bytes / event_entries,
        "B/entry",
        entries=event_entries,
        **context,
    )

    await trim_outbox(store, outbox)
    trimmed = await used_memory(redis)
    reply_left = await memory_usage(redis, [key.encode() for key in replies])
    event_left = await memory_usage(redis, [key.encode() for key in events])
    report(
        "reply_entry_bytes_after_trimming",
        reply_left / reply_entries,
        "B/entry",
        streams_bytes=reply_left,
        **context,
    )
    report(
        "event_entry_bytes_after_trimming",
        event_left / event_entries,
        "B/entry",
        streams_bytes=event_left,
        **context,
    )
    report(
        "used_memory_per_student_with_outbox",
        (filled - before) / students,
        "B/student",
        how="INFO used_memory growth (whole server)",
        **context,
    )
    report(
        "used_memory_per_student_after_trimming",
        (trimmed - before) / students,
        "B/student",
        how="INFO used_memory growth (whole server)",
        **context,
    )
    await redis.aclose()


def main() -> None:
    """Run the measurement and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--students", type=int, default=20_000, help="sessions to create"
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=4,
        help="messages per student, the greeting included (16+ fills the window)",
    )
    args = parser.parse_args()
    asyncio.run(measure(args.students, max(1, args.messages)))


if __name__ == "__main__":
    main()
