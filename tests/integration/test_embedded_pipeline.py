"""The embedded default carries every event to its SQLite event store, in process."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from tutorlane.adapters.event_store import open_event_store
from tutorlane.bootstrap import start_runtime
from tutorlane.domain.messages import Inbound, Kind
from tutorlane.entrypoints.settings import Settings


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
