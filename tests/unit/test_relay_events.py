"""The relay's rules: acknowledge what the bus confirmed; park what is unreadable."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tutorlane.commands.ports import BusMessage, OutboxEntry
from tutorlane.commands.relay_events import EventRelay


class FakeEventOutbox:
    """One shard's entries, with a pending list per consumer as Redis keeps it."""

    shards = 1

    def __init__(self, entries: list[OutboxEntry]) -> None:
        self.new = list(entries)
        self.pending: list[OutboxEntry] = []
        self.acknowledged: list[str] = []

    async def read(
        self, shard: int, consumer: str, count: int, block_ms: int, pending: bool
    ) -> list[OutboxEntry]:
        if pending:
            return self.pending[:count]
        taken, self.new = self.new[:count], self.new[count:]
        self.pending.extend(taken)
        return taken

    async def reclaim(self, shard: int, consumer: str, idle_ms: int, count: int) -> int:
        return 0

    async def acknowledge(self, shard: int, entry_ids: Sequence[str]) -> None:
        self.acknowledged.extend(entry_ids)
        self.pending = [e for e in self.pending if e.entry_id not in entry_ids]


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[BusMessage] = []
        self.parked: list[tuple[bytes, str]] = []
        self.away = False

    async def publish(self, messages: Sequence[BusMessage]) -> None:
        if self.away:
            raise ConnectionError("broker away")
        self.published.extend(messages)

    async def dead_letter(self, body: bytes, reason: str) -> None:
        self.parked.append((body, reason))


def entry(number: int) -> OutboxEntry:
    message = BusMessage(f"e{number}", "student", number, b"{}")
    return OutboxEntry(f"{number}-0", (message,))


async def test_entries_are_acknowledged_after_the_bus_took_them() -> None:
    outbox = FakeEventOutbox([entry(1), entry(2)])
    publisher = FakePublisher()

    await EventRelay(outbox, publisher, "me").relay_shard_once(0)

    assert [m.seq for m in publisher.published] == [1, 2]
    assert outbox.acknowledged == ["1-0", "2-0"]


async def test_entries_stay_pending_while_the_bus_is_away_and_go_when_it_is_back() -> (
    None
):
    outbox = FakeEventOutbox([entry(1), entry(2)])
    publisher = FakePublisher()
    relay = EventRelay(outbox, publisher, "me")
    publisher.away = True

    with pytest.raises(ConnectionError):
        await relay.relay_shard_once(0)
    assert outbox.acknowledged == [] and len(outbox.pending) == 2

    publisher.away = False
    await relay.relay_shard_once(0, pending=True)

    assert [m.seq for m in publisher.published] == [1, 2]
    assert outbox.acknowledged == ["1-0", "2-0"]


async def test_an_unreadable_entry_is_parked_and_does_not_block_the_shard() -> None:
    broken = OutboxEntry("1-0", (), b"\xc1", "outbox entry 1-0 unreadable: ...")
    outbox = FakeEventOutbox([broken, entry(2)])
    publisher = FakePublisher()

    await EventRelay(outbox, publisher, "me").relay_shard_once(0)

    assert publisher.parked == [(b"\xc1", "outbox entry 1-0 unreadable: ...")]
    assert [m.seq for m in publisher.published] == [2]
    assert outbox.acknowledged == ["1-0", "2-0"]


class TrickleOutbox(FakeEventOutbox):
    """An outbox that gains one entry every 10 ms, as a steady trickle would."""

    def __init__(self) -> None:
        super().__init__([])
        self.began = 0.0
        self.added = 0
        self.reads: list[int] = []

    async def read(
        self, shard: int, consumer: str, count: int, block_ms: int, pending: bool
    ) -> list[OutboxEntry]:
        loop = asyncio.get_running_loop()
        self.began = self.began or loop.time()
        due = int((loop.time() - self.began) / 0.01) + 1
        while self.added < due:
            self.added += 1
            self.new.append(entry(self.added))
        if not self.new and not pending:
            await asyncio.sleep(0.005)  # as XREADGROUP BLOCK would, briefly
        taken = await super().read(shard, consumer, count, block_ms, pending)
        if taken:
            self.reads.append(len(taken))
        return taken


async def test_a_trickle_is_relayed_in_batches_not_an_entry_at_a_time() -> None:
    outbox = TrickleOutbox()
    publisher = FakePublisher()
    relay = EventRelay(outbox, publisher, "me", linger_seconds=0.05)
    stop = asyncio.Event()

    task = asyncio.create_task(relay.run_shard(0, stop))
    await asyncio.sleep(0.5)
    stop.set()
    await task

    # About 50 entries came in 0.5 s: lingering 50 ms, reads take ~5 at a time.
    assert len(publisher.published) >= 30
    assert len(outbox.reads) <= 12
    assert [m.seq for m in publisher.published] == list(
        range(1, len(publisher.published) + 1)
    )
