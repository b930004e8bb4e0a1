"""Replaying parked messages: what goes back to the bus, and what stays parked."""

from __future__ import annotations

from collections.abc import Sequence

from tutorlane.adapters.codecs import encode_envelope, read_parked
from tutorlane.commands.ports import BusMessage, DeliveredEvent
from tutorlane.commands.replay_dead_letters import ReplayDeadLetters
from tutorlane.tests.unit.test_record_events import event


class Parked:
    def __init__(self, body: bytes, reason: str, queue: ParkedQueue) -> None:
        self.body = body
        self.events = read_parked(body)
        self.reason = reason
        self.queue = queue

    async def settle(self) -> None:
        self.queue.settled.append(self.body)

    async def park_again(self) -> None:
        self.queue.parked_again.append(self.body)


class ParkedQueue:
    def __init__(self, *parked: tuple[bytes, str]) -> None:
        self.messages = [Parked(body, reason, self) for body, reason in parked]
        self.settled: list[bytes] = []
        self.parked_again: list[bytes] = []

    async def take(self, limit: int) -> Sequence[Parked]:
        return self.messages[:limit]

    async def close(self) -> None:
        pass


class Bus:
    def __init__(self) -> None:
        self.published: list[BusMessage] = []

    async def publish(self, messages: Sequence[BusMessage]) -> None:
        self.published.extend(messages)

    async def dead_letter(self, body: bytes, reason: str) -> None:
        raise AssertionError("a replay parks nothing anew")


def test_a_parked_message_reads_as_one_event_a_bus_message_or_neither() -> None:
    def read(body: bytes) -> list[tuple[str, int] | str]:
        return [
            (part.student, part.seq) if isinstance(part, DeliveredEvent) else "bad"
            for part in read_parked(body)
        ]

    assert read(event("ana", 3)) == [("ana", 3)]
    assert read(encode_envelope([event("ana", 1), event("ben", 1)])) == [
        ("ana", 1),
        ("ben", 1),
    ]
    assert read(b"\x93\x01\x02") == ["bad"]


async def test_readable_messages_go_back_to_the_bus_in_order_and_leave_it() -> None:
    queue = ParkedQueue(
        (event("ana", 2), "waited"),
        (encode_envelope([event("ben", 1), event("ben", 2)]), "rejected"),
    )
    bus = Bus()

    outcome = await ReplayDeadLetters(queue, bus).replay(100)

    assert [(m.student, m.seq) for m in bus.published] == [
        ("ana", 2),
        ("ben", 1),
        ("ben", 2),
    ]
    assert bus.published[0].body == event("ana", 2)
    assert queue.settled == [event("ana", 2), queue.messages[1].body]
    assert (outcome.messages, outcome.events, outcome.still_unreadable) == (2, 3, 0)
    assert outcome.reasons == {"waited": 1, "rejected": 1}


async def test_a_message_with_any_unreadable_part_is_parked_again_whole() -> None:
    partly = encode_envelope([event("ana", 1), b'{"type": "NoSuchEvent"}'])
    queue = ParkedQueue((partly, "unknown event"), (b"\x93", "outbox entry unreadable"))
    bus = Bus()

    outcome = await ReplayDeadLetters(queue, bus).replay(100)

    assert bus.published == []
    assert queue.settled == []
    assert queue.parked_again == [partly, b"\x93"]
    assert outcome.still_unreadable == 2


async def test_a_replay_takes_no_more_than_its_limit() -> None:
    queue = ParkedQueue(*[(event("cy", seq), "r") for seq in range(1, 6)])
    bus = Bus()

    outcome = await ReplayDeadLetters(queue, bus).replay(2)

    assert [m.seq for m in bus.published] == [1, 2]
    assert outcome.messages == 2
