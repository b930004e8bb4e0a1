"""The session store contract, run against fakeredis and a real Redis alike."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from tutorlane.adapters.codecs import (
    SESSION_FORMAT,
    OutgoingReply,
    decode_events,
    encode_reply,
    encode_session,
)
from tutorlane.adapters.redis_event_outbox import RedisEventOutbox
from tutorlane.adapters.redis_sessions import RedisSessionStore, shard_of
from tutorlane.bootstrap import REDIS_CONNECTIONS, REDIS_POOL_SIZE, connect_redis
from tutorlane.commands.handle_message import MessageHandler
from tutorlane.commands.ports import SessionFromNewerRelease, VersionConflict
from tutorlane.domain.course import Course, parse_course
from tutorlane.domain.events import HintGiven
from tutorlane.domain.messages import Inbound, Kind, Reply
from tutorlane.domain.session import Session, Status
from tutorlane.entrypoints.settings import Settings
from tutorlane.tests.courses import TINY_COURSE
from tutorlane.tests.history import hint

STUDENT = "pseudo-1"
PHONE = "+919800000001"


@pytest.fixture
def course() -> Course:
    return parse_course(TINY_COURSE, "tiny.yaml")


def keyed_by_phone(phone: str) -> str:
    return f"pseudo-{phone[-4:]}"


async def test_an_unknown_student_gets_a_new_session(store: RedisSessionStore) -> None:
    assert await store.load(STUDENT) == Session()


async def test_a_committed_session_loads_back(store: RedisSessionStore) -> None:
    session = Session(version=1, status=Status.ACTIVE, node="add-1", recent=(b"x",))
    await store.commit(STUDENT, 0, session, PHONE, Reply("hello"), [])

    assert await store.load(STUDENT) == session


async def test_a_stale_version_is_refused_and_writes_nothing(
    store: RedisSessionStore, redis_client: Redis
) -> None:
    await store.commit(STUDENT, 0, Session(version=1), PHONE, Reply("one"), [])

    with pytest.raises(VersionConflict):
        await store.commit(STUDENT, 0, Session(version=1), PHONE, Reply("two"), [])

    shard = shard_of(STUDENT, store.shards)
    assert await redis_client.xlen(store.replies_key(shard)) == 1
    assert await redis_client.xlen(store.events_key(shard)) == 0


async def test_commit_appends_the_reply_and_the_events_to_the_outbox(
    store: RedisSessionStore, redis_client: Redis
) -> None:
    event = HintGiven(
        event_id="e1",
        student=STUDENT,
        seq=1,
        message_id="m1",
        occurred_at=1.0,
        course="tiny",
        node="add-1",
        skill="addition",
        hint_number=1,
    )
    entry_id = await store.commit(
        STUDENT, 0, Session(version=1), PHONE, Reply("a hint", ("1", "2")), [event]
    )

    shard = shard_of(STUDENT, store.shards)
    rows: Any = await redis_client.xrange(store.events_key(shard))
    ((_, fields),) = rows
    assert decode_events(fields[b"e"]) == [event]
    assert fields[b"s"].decode() == STUDENT
    assert PHONE.encode() not in fields[b"e"], "events never carry the phone number"
    (pending,) = await store.unconfirmed(shard, time.time() + 60, 10)
    assert pending.entry_id == entry_id
    assert (pending.to, pending.reply) == (PHONE, Reply("a hint", ("1", "2")))


async def test_confirmed_replies_leave_the_outbox(store: RedisSessionStore) -> None:
    entry_id = await store.commit(STUDENT, 0, Session(version=1), PHONE, Reply("x"), [])
    shard = shard_of(STUDENT, store.shards)

    await store.confirm(STUDENT, entry_id)

    assert await store.unconfirmed(shard, time.time() + 60, 10) == []


async def test_confirms_of_one_moment_share_one_round_trip_and_all_take_effect(
    store: RedisSessionStore, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    students = [f"pseudo-{n}" for n in range(40)]
    entries = [
        (
            student,
            await store.commit(student, 0, Session(version=1), PHONE, Reply("x"), []),
        )
        for student in students
    ]
    pipelines = 0
    make_pipeline = redis_client.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        nonlocal pipelines
        pipelines += 1
        return make_pipeline(*args, **kwargs)

    monkeypatch.setattr(redis_client, "pipeline", counting_pipeline)

    await asyncio.gather(*(store.confirm(student, entry) for student, entry in entries))

    assert pipelines == 1
    for shard in range(store.shards):
        assert await redis_client.xlen(store.replies_key(shard)) == 0


async def test_a_confirm_that_cannot_reach_redis_raises_in_every_caller(
    store: RedisSessionStore, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry_id = await store.commit(STUDENT, 0, Session(version=1), PHONE, Reply("x"), [])

    def broken_pipeline(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Redis is away")

    monkeypatch.setattr(redis_client, "pipeline", broken_pipeline)
    results = await asyncio.gather(
        store.confirm(STUDENT, entry_id),
        store.confirm("pseudo-2", "1-1"),
        return_exceptions=True,
    )

    assert all(isinstance(result, ConnectionError) for result in results)
    shard = shard_of(STUDENT, store.shards)
    assert await redis_client.xlen(store.replies_key(shard)) == 1


async def test_only_replies_older_than_the_grace_period_count_as_unconfirmed(
    store: RedisSessionStore,
) -> None:
    await store.commit(STUDENT, 0, Session(version=1), PHONE, Reply("x"), [])
    shard = shard_of(STUDENT, store.shards)

    assert await store.unconfirmed(shard, time.time() - 60, 10) == []


async def test_one_sweeper_at_a_time_holds_a_shard(store: RedisSessionStore) -> None:
    assert await store.lease(0, "a", 5.0)
    assert await store.lease(0, "a", 5.0), "the holder renews its lease"
    assert not await store.lease(0, "b", 5.0)


async def test_sessions_expire_after_their_time_to_live(
    store: RedisSessionStore, redis_client: Redis
) -> None:
    await store.commit(STUDENT, 0, Session(version=1), PHONE, Reply("x"), [])

    ttl = await redis_client.ttl(store.session_key(STUDENT))
    assert 0 < ttl <= store.session_ttl


async def test_messages_of_one_student_at_the_same_moment_lose_no_update(
    store: RedisSessionStore, course: Course
) -> None:
    handler = MessageHandler(store, course, keyed_by_phone)
    await handler.handle(PHONE, Inbound("start", Kind.TEXT, "hi"))
    first = (await store.load(keyed_by_phone(PHONE))).version

    messages = [Inbound(f"h-{i}", Kind.TEXT, "what?") for i in range(20)]
    results = await asyncio.gather(*(handler.handle(PHONE, m) for m in messages))

    session = await store.load(keyed_by_phone(PHONE))
    assert session.version == first + 20
    assert all(result.reply is not None for result in results)


async def test_the_same_message_delivered_twice_at_once_replies_once(
    store: RedisSessionStore, course: Course
) -> None:
    handler = MessageHandler(store, course, keyed_by_phone)
    await handler.handle(PHONE, Inbound("start", Kind.TEXT, "hi"))
    first = (await store.load(keyed_by_phone(PHONE))).version

    message = Inbound("answer-1", Kind.TEXT, "15")
    results = await asyncio.gather(*(handler.handle(PHONE, message) for _ in range(5)))

    assert sum(result.reply is not None for result in results) == 1
    session = await store.load(keyed_by_phone(PHONE))
    assert (session.version, session.answered, session.correct) == (first + 1, 1, 1)


UNREADABLE_REPLIES = {
    "not msgpack": b"garbage",
    "text not a string": msgspec.msgpack.encode([PHONE, 5, None, "x"]),
    "buttons not strings": msgspec.msgpack.encode([PHONE, "t", [1], 1.0]),
    "too short": msgspec.msgpack.encode([PHONE, "t"]),
}


@pytest.mark.parametrize(
    "unreadable", UNREADABLE_REPLIES.values(), ids=UNREADABLE_REPLIES.keys()
)
async def test_an_unreadable_reply_is_set_aside_and_the_others_still_swept(
    store: RedisSessionStore, redis_client: Redis, unreadable: bytes
) -> None:
    entry_id = await store.commit(STUDENT, 0, Session(version=1), PHONE, Reply("x"), [])
    shard = shard_of(STUDENT, store.shards)
    await redis_client.xadd(store.replies_key(shard), {"s": "someone", "r": unreadable})

    pending = await store.unconfirmed(shard, time.time() + 60, 10)

    assert [item.entry_id for item in pending] == [entry_id]
    assert await redis_client.xlen(store.replies_key(shard)) == 1
    dead: Any = await redis_client.xrange(f"tl:{{s{shard:02d}}}:r-dead")
    assert dead[0][1][b"r"] == unreadable


async def test_a_reply_whose_student_is_not_utf8_is_set_aside(
    store: RedisSessionStore, redis_client: Redis
) -> None:
    shard = shard_of(STUDENT, store.shards)
    readable = encode_reply(OutgoingReply(PHONE, Reply("fine"), 1.0))
    await redis_client.xadd(store.replies_key(shard), {"s": b"\xff\xfe", "r": readable})

    assert await store.unconfirmed(shard, time.time() + 60, 10) == []

    assert await redis_client.xlen(store.replies_key(shard)) == 0
    assert await redis_client.xlen(f"tl:{{s{shard:02d}}}:r-dead") == 1


async def test_an_event_outbox_entry_without_its_payload_reads_as_unreadable(
    redis_client: Redis,
) -> None:
    outbox = RedisEventOutbox(redis_client, shards=1)
    await outbox.ensure_groups()
    await redis_client.xadd(outbox.key(0), {"s": "x"})

    (entry,) = await outbox.read(0, "me", 10, 0, pending=False)

    assert entry.messages == () and entry.problem is not None


async def test_the_relay_reads_on_after_redis_lost_its_streams_and_groups(
    store: RedisSessionStore, redis_client: Redis
) -> None:
    outbox = RedisEventOutbox(redis_client, shards=store.shards)
    await outbox.ensure_groups()
    await redis_client.flushdb()  # a flush, or a failover to an empty replica
    event = hint(STUDENT, 1)
    await store.commit(STUDENT, 0, Session(version=1), PHONE, Reply("x"), [event])
    shard = shard_of(STUDENT, store.shards)

    (entry,) = await outbox.read(shard, "me", 10, 0, pending=False)

    assert [message.event_id for message in entry.messages] == [event.event_id]
    await redis_client.flushdb()
    assert await outbox.reclaim(shard, "me", 0, 10) == 0
    assert await outbox.read(shard, "me", 10, 10, pending=False) == []


async def test_a_relay_read_blocked_when_redis_is_flushed_reads_on_after(
    store: RedisSessionStore, redis_client: Redis
) -> None:
    outbox = RedisEventOutbox(redis_client, shards=1)
    await outbox.ensure_groups()
    reading = asyncio.create_task(outbox.read(0, "me", 10, 2000, pending=False))
    await asyncio.sleep(0.2)  # blocked on the empty stream

    await redis_client.flushdb()

    assert await reading == []
    await redis_client.xadd(outbox.key(0), {"s": "x"})  # the fast lane goes on
    (entry,) = await outbox.read(0, "me", 10, 10, pending=False)
    assert entry.problem is not None  # (an entry without its payload)


async def test_a_burst_larger_than_the_connection_pool_waits_instead_of_failing(
    redis_url: str, course: Course
) -> None:
    settings = Settings(redis_url=redis_url)
    client = connect_redis(settings)
    await client.flushdb()
    store = RedisSessionStore(client, max_in_flight=REDIS_CONNECTIONS)
    handler = MessageHandler(store, course, keyed_by_phone)
    phones = [f"+9198{n:08d}" for n in range(REDIS_POOL_SIZE + 64)]

    try:
        results = await asyncio.gather(
            *(
                handler.handle(phone, Inbound(f"hi-{phone}", Kind.TEXT, "hi"))
                for phone in phones
            )
        )
    finally:
        await client.aclose()

    assert all(result.reply is not None for result in results)


async def test_a_redis_that_accepts_but_never_answers_times_out_every_call() -> None:
    # A Redis that hangs (a network partition, a stuck server) keeps the connection
    # open and says nothing: the store's own deadline must end each call.
    async def silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read(-1)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0")
    client = connect_redis(settings, socket_timeout=None)
    store = RedisSessionStore(client, shards=4, timeout=0.2)
    calls = [
        store.load(STUDENT),
        store.load_many([STUDENT, "pseudo-2"]),
        store.commit(STUDENT, 0, Session(version=1), PHONE, Reply("hi"), []),
        store.confirm(STUDENT, "1-0"),
        store.lease(0, "me", 5.0),
        store.unconfirmed(0, time.time(), 10),
    ]
    try:
        for call in calls:
            began = time.monotonic()
            with pytest.raises(TimeoutError):
                # NOTE: the guard keeps a store without a deadline from hanging
                # the run; it fails the elapsed-time check below instead.
                await asyncio.wait_for(call, 5.0)
            assert time.monotonic() - began < 2.0
    finally:
        await client.aclose()
        server.close()


def _fields(**values: object) -> bytes:
    """A session's stored list with some fields (in declaration order) replaced."""
    session = msgspec.msgpack.decode(encode_session(Session(version=7, seq=3)))
    for name, value in values.items():
        session[1 + [f.name for f in dataclasses.fields(Session)].index(name)] = value
    return msgspec.msgpack.encode(session)


DAMAGED = {
    "not msgpack": b"7|\xc1 not msgpack",
    "no prefix": encode_session(Session(version=7)),
    "prefix not the version": b"5|" + encode_session(Session(version=7)),
    "leading zero": b"07|" + encode_session(Session(version=7)),
    "format alone": b"0|" + msgspec.msgpack.encode([SESSION_FORMAT]),
    "seq not a number": b"7|" + _fields(seq="x"),
    "time not a number": b"7|" + _fields(last_seen="yesterday"),
    "fingerprints not bytes": b"7|" + _fields(recent=[1, 2, 3]),
    "horizon in the future": b"7|" + _fields(horizon=2**53 - 1),
    "version past int64": b"18446744073709551615|" + _fields(version=2**64 - 1),
}


@pytest.mark.parametrize("damaged", DAMAGED.values(), ids=DAMAGED.keys())
async def test_a_damaged_session_is_set_aside_and_reads_as_none(
    store: RedisSessionStore, redis_client: Redis, damaged: bytes
) -> None:
    await store.commit(STUDENT, 0, Session(version=7), PHONE, Reply("hi"), [])
    key = store.session_key(STUDENT)
    await redis_client.set(key, damaged)

    assert await store.load(STUDENT) == Session()

    assert await redis_client.get(key) is None
    kept = store.damaged_key(STUDENT)
    assert await redis_client.get(kept) == damaged
    assert 6 * 24 * 3600 < await redis_client.ttl(kept) <= 7 * 24 * 3600
    # With the damaged value gone, a new session commits as for a new student.
    await store.commit(STUDENT, 0, Session(version=9), PHONE, Reply("hi"), [])
    assert (await store.load(STUDENT)).version == 9


async def test_a_key_of_another_type_is_set_aside_too(
    store: RedisSessionStore, redis_client: Redis
) -> None:
    key = store.session_key(STUDENT)
    await redis_client.hset(key, "a", "b")

    assert await store.load(STUDENT) == Session()

    assert await redis_client.exists(key) == 0
    assert await redis_client.hgetall(store.damaged_key(STUDENT)) == {b"a": b"b"}
    await store.commit(STUDENT, 0, Session(version=9), PHONE, Reply("hi"), [])
    assert (await store.load(STUDENT)).version == 9


async def test_a_session_of_a_newer_release_is_left_alone(
    store: RedisSessionStore, redis_client: Redis
) -> None:
    key = store.session_key(STUDENT)
    newer = b"12|" + msgspec.msgpack.encode([SESSION_FORMAT + 1, "what", "ever"])
    await redis_client.set(key, newer)

    with pytest.raises(SessionFromNewerRelease):
        await store.load(STUDENT)

    assert await redis_client.get(key) == newer
    assert await redis_client.exists(store.damaged_key(STUDENT)) == 0
