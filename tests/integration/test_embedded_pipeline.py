"""The embedded default carries every event to its SQLite event store, in process."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest

from tutorlane.adapters.codecs import SESSION_FORMAT
from tutorlane.adapters.event_store import open_event_store
from tutorlane.bootstrap import Runtime, start_runtime
from tutorlane.domain.messages import Inbound, Kind
from tutorlane.entrypoints.settings import Settings
from tutorlane.entrypoints.webhook import RuntimeHolder, create_app


async def test_every_committed_event_reaches_sqlite_before_shutdown(
    tmp_path: Path,
) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    runtime = await start_runtime(settings, secret="s")
    phones = [f"+9197000{n:05d}" for n in range(30)]
    for phone in phones:
        for step, text in enumerate(["hi", "500", "hint", "7", "skip"]):
            message = Inbound(f"{phone}-{step}", Kind.TEXT, text)
            await runtime.handler.handle(phone, message)
    committed = {
        runtime.handler.pseudonymise(phone): (
            await runtime.store.load(runtime.handler.pseudonymise(phone))
        ).seq
        for phone in phones
    }

    await runtime.close()

    store = open_event_store(settings.event_store_url)
    recorded: dict[str, list[int]] = defaultdict(list)
    for event in store.read(0, 100_000):
        recorded[event.student].append(event.seq)
    store.close()
    assert sum(committed.values()) == 30 * 5, "each message here records one event"
    for student, last in committed.items():
        assert recorded[student] == list(range(1, last + 1))


async def test_after_a_restart_a_student_carries_on_where_they_were(
    tmp_path: Path,
) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    phone = "+919700099999"
    replies = []
    for run, script in enumerate([["hi", "500", "hint"], ["7", "hint"]]):
        # The embedded sessions live in memory: each run starts without them.
        runtime = await start_runtime(settings, secret="s")
        for step, text in enumerate(script):
            message = Inbound(f"run{run}-{step}", Kind.TEXT, text, sent_at=run)
            handled = await runtime.handler.handle(phone, message)
            assert handled.reply is not None
            replies.append(handled.reply.text)
        session = await runtime.store.load(runtime.handler.pseudonymise(phone))
        await runtime.close()

    store = open_event_store(settings.event_store_url)
    events = store.read(0, 1000)
    store.close()
    assert [event.seq for event in events] == [1, 2, 3, 4]
    assert [event.topic.split("/")[0] for event in events] == [
        "CourseStarted",
        "AnswerSubmitted",
        "HintGiven",
        "AnswerSubmitted",
    ]
    # The restored student answered the question they had had a hint for, and
    # that question's only hint counted as used: attempt and hints came back.
    assert replies[2].split("\n\n")[-1] == replies[3].split("\n\n")[-1]
    assert "No more hints" in replies[4]
    assert (session.node, session.attempts, session.hints) == ("pv-2", 1, 1)


async def _recorded(runtime: Runtime, student: str, count: int) -> None:
    """Wait until the embedded slow lane has recorded `count` events of a student."""
    recorded = runtime.handler.recorded
    assert recorded is not None
    for _ in range(200):
        if len(await recorded.history(student)) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} events of {student} not recorded within 10 s")


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    # Closed even when a test fails: its relay thread would otherwise hold the run.
    started = await start_runtime(Settings(var_dir=tmp_path / "var"), secret="s")
    try:
        yield started
    finally:
        await started.close()


async def test_a_damaged_session_is_set_aside_and_the_student_restored(
    runtime: Runtime,
) -> None:
    phone = "+919700088888"
    student = runtime.handler.pseudonymise(phone)
    for step, text in enumerate(["hi", "500", "hint"]):
        await runtime.handler.handle(phone, Inbound(f"m{step}", Kind.TEXT, text))
    await _recorded(runtime, student, 3)
    before = await runtime.store.load(student)
    await runtime.redis.set(runtime.store.session_key(student), b"damaged")

    handled = await runtime.handler.handle(phone, Inbound("m3", Kind.TEXT, "hint"))

    # The student is where they were, the hint already used, and their next event
    # follows the recorded ones.
    assert handled.reply is not None and "No more hints" in handled.reply.text
    after = await runtime.store.load(student)
    assert (after.node, after.attempts, after.hints) == ("pv-2", 0, 1)
    assert (before.node, before.attempts, before.hints) == ("pv-2", 0, 1)
    assert after.seq == before.seq
    kept = await runtime.redis.get(runtime.store.damaged_key(student))
    assert kept == b"damaged"


async def test_a_session_of_a_newer_release_gets_503_and_is_left_alone(
    tmp_path: Path,
) -> None:
    holder = RuntimeHolder(Settings(var_dir=tmp_path / "var"), secret="s")
    app = create_app(holder)
    runtime = await holder.start()
    phone = "+919700077777"
    key = runtime.store.session_key(runtime.handler.pseudonymise(phone))
    newer = b"40|" + msgspec.msgpack.encode([SESSION_FORMAT + 1, "from", "later"])
    await runtime.redis.set(key, newer)
    body = {
        "from": phone,
        "type": "text",
        "timestamp": "1780000000",
        "message_id": "m-newer",
        "text": {"body": "hi"},
    }

    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.post("/webhooks/swiftchat/s", json=body)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert "newer release" in response.json()["description"]
    assert await runtime.redis.get(key) == newer
    await holder.stop()
