"""Reply delivery: at once, again from the outbox, never twice from one process."""

from __future__ import annotations

import asyncio

from tutorlane.commands.deliver_replies import ReplyDelivery
from tutorlane.commands.ports import PendingReply, PermanentSendError
from tutorlane.domain.messages import Reply

PHONE = "+919800000001"


class FakeReplyOutbox:
    shards = 1

    def __init__(self) -> None:
        self.entries: dict[str, PendingReply] = {}

    def add(self, entry_id: str, created_at: float = 0.0) -> PendingReply:
        item = PendingReply(entry_id, "student", PHONE, Reply(entry_id), created_at)
        self.entries[entry_id] = item
        return item

    async def confirm(self, student: str, entry_id: str) -> None:
        self.entries.pop(entry_id, None)

    async def lease(self, shard: int, owner: str, seconds: float) -> bool:
        return True

    async def unconfirmed(
        self, shard: int, older_than: float, limit: int
    ) -> list[PendingReply]:
        return [e for e in self.entries.values() if e.created_at < older_than][:limit]


class FakeSender:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.refuse = False
        self.fail = False

    async def send(self, to: str, reply: Reply) -> None:
        await self.gate.wait()
        if self.refuse:
            raise PermanentSendError("HTTP 400: bad request")
        if self.fail:
            raise ConnectionError("API away")
        self.sent.append(reply.text)


def delivery(outbox: FakeReplyOutbox, sender: FakeSender, now: float) -> ReplyDelivery:
    return ReplyDelivery(outbox, sender, "me", clock=lambda: now, grace_seconds=10)


async def test_a_reply_is_sent_and_leaves_the_outbox() -> None:
    outbox, sender = FakeReplyOutbox(), FakeSender()
    outbox.add("r1")

    assert await delivery(outbox, sender, 0).deliver(
        "student", "r1", PHONE, Reply("r1")
    )
    assert sender.sent == ["r1"] and outbox.entries == {}


async def test_the_sweeper_leaves_alone_a_reply_this_process_is_still_sending() -> None:
    outbox, sender = FakeReplyOutbox(), FakeSender()
    outbox.add("r1", created_at=0)
    replies = delivery(outbox, sender, now=100)
    sender.gate.clear()
    replies.dispatch("student", "r1", PHONE, Reply("r1"))
    await asyncio.sleep(0)

    assert await replies.sweep_once() == 0
    sender.gate.set()
    await replies.drain()

    assert sender.sent == ["r1"]


async def test_a_reply_that_failed_is_sent_again_by_the_sweeper() -> None:
    outbox, sender = FakeReplyOutbox(), FakeSender()
    outbox.add("r1", created_at=0)
    replies = delivery(outbox, sender, now=100)
    sender.fail = True
    assert not await replies.deliver("student", "r1", PHONE, Reply("r1"))

    sender.fail = False
    assert await replies.sweep_once() == 1
    assert sender.sent == ["r1"] and outbox.entries == {}


async def test_a_reply_the_api_refuses_for_good_is_dropped() -> None:
    outbox, sender = FakeReplyOutbox(), FakeSender()
    outbox.add("r1")
    sender.refuse = True

    await delivery(outbox, sender, 0).deliver("student", "r1", PHONE, Reply("r1"))

    assert outbox.entries == {} and sender.sent == []


async def test_a_reply_older_than_the_give_up_age_is_dropped_unsent() -> None:
    outbox, sender = FakeReplyOutbox(), FakeSender()
    outbox.add("r1", created_at=0)
    replies = delivery(outbox, sender, now=24 * 3600)

    assert await replies.sweep_once() == 0
    assert outbox.entries == {} and sender.sent == []


async def test_replies_of_two_shards_with_the_same_entry_id_are_both_sent() -> None:
    # Each shard is its own stream: two of them commit `<ms>-0` in the same moment.
    outbox, sender = FakeReplyOutbox(), FakeSender()
    replies = delivery(outbox, sender, now=0)
    sender.gate.clear()
    replies.dispatch("student-a", "1700000000000-0", PHONE, Reply("to a"))
    replies.dispatch("student-b", "1700000000000-0", PHONE, Reply("to b"))
    await asyncio.sleep(0)
    sender.gate.set()
    await replies.drain()

    assert sorted(sender.sent) == ["to a", "to b"]
