"""The worker's rules: once, in order, gaps waited for, poison parked, failures kept."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from tutorlane.adapters.codecs import encode_envelope, event_to_json, read_envelope
from tutorlane.commands.ports import DeliveredEvent, NewRecord, UnreadableEvent
from tutorlane.commands.record_events import EventRecorder
from tutorlane.domain.events import HintGiven, event_id_for


class FakeEventLog:
    """An event store in a dict, which can be told to fail."""

    def __init__(self) -> None:
        self.records: list[NewRecord] = []
        self.failing = False
        self.lookups_failing = 0

    def last_seqs(self, students: Sequence[str]) -> dict[str, int]:
        return {
            s: max((r.seq for r in self.records if r.student == s), default=0)
            for s in students
        }

    def append(self, records: Sequence[NewRecord]) -> None:
        if self.failing:
            raise ConnectionError("database away")
        self.records.extend(records)

    def event_ids(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], str]:
        if self.lookups_failing:
            self.lookups_failing -= 1
            raise ConnectionError("database away")
        ids = {
            (r.student, r.seq): json.loads(r.state)["event_id"] for r in self.records
        }
        return {key: ids[key] for key in keys if key in ids}

    def seqs(self, student: str) -> list[int]:
        return [r.seq for r in self.records if r.student == student]


class FakeDeadLetters:
    def __init__(self) -> None:
        self.parked: list[tuple[bytes, str]] = []
        self.failing = 0

    async def publish(self, messages: Sequence[object]) -> None:
        raise AssertionError("the recorder never publishes events")

    async def dead_letter(self, body: bytes, reason: str) -> None:
        if self.failing:
            self.failing -= 1
            raise ConnectionError("broker away")
        self.parked.append((body, reason))


class FakeDelivery:
    def __init__(self, *bodies: bytes) -> None:
        self.events: list[DeliveredEvent | UnreadableEvent] = read_envelope(
            encode_envelope(list(bodies))
        )
        self.acked = False
        self.given_back = False

    async def ack(self) -> None:
        assert not (self.acked or self.given_back), "settled twice"
        self.acked = True

    async def retry_later(self) -> None:
        assert not (self.acked or self.given_back), "settled twice"
        self.given_back = True


def event(student: str, seq: int, message_id: str = "") -> bytes:
    message_id = message_id or f"m{seq}"
    return event_to_json(
        HintGiven(
            event_id=event_id_for(student, message_id, seq),
            student=student,
            seq=seq,
            message_id=message_id,
            occurred_at=1.0,
            course="c",
            node="n",
            skill="k",
            hint_number=1,
        )
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log() -> FakeEventLog:
    return FakeEventLog()


@pytest.fixture
def dead() -> FakeDeadLetters:
    return FakeDeadLetters()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def recorder(log: FakeEventLog, dead: FakeDeadLetters, clock: Clock) -> EventRecorder:
    return EventRecorder(log, dead, clock=clock, hold_seconds=30)


async def test_a_message_is_recorded_and_settled(
    recorder: EventRecorder, log: FakeEventLog
) -> None:
    delivery = FakeDelivery(event("a", 1), event("b", 1), event("a", 2))

    await recorder.record([delivery])

    assert log.seqs("a") == [1, 2] and log.seqs("b") == [1]
    assert delivery.acked


async def test_a_redelivered_message_is_settled_without_a_second_record(
    recorder: EventRecorder, log: FakeEventLog
) -> None:
    await recorder.record([FakeDelivery(event("a", 1), event("a", 2))])
    again = FakeDelivery(event("a", 1), event("a", 2))

    outcome = await recorder.record([again])

    assert log.seqs("a") == [1, 2]
    assert outcome.duplicates == 2 and again.acked


async def test_an_event_after_a_gap_waits_for_the_missing_one(
    recorder: EventRecorder, log: FakeEventLog
) -> None:
    await recorder.record([FakeDelivery(event("a", 1))])
    early = FakeDelivery(event("a", 3))

    await recorder.record([early])
    assert log.seqs("a") == [1] and not early.acked and recorder.held == 1

    missing = FakeDelivery(event("a", 2))
    await recorder.record([missing])

    assert log.seqs("a") == [1, 2, 3]
    assert early.acked and missing.acked and recorder.held == 0


async def test_a_gap_that_stays_open_gives_the_message_back_to_the_bus(
    recorder: EventRecorder, log: FakeEventLog, clock: Clock
) -> None:
    early = FakeDelivery(event("a", 2), event("b", 1))
    await recorder.record([early])
    assert log.seqs("b") == [1], "the rest of the message is recorded meanwhile"

    clock.now = 31
    await recorder.record([])

    assert early.given_back and not early.acked and recorder.held == 0


async def test_an_unreadable_event_is_parked_with_the_reason_and_the_rest_recorded(
    recorder: EventRecorder, log: FakeEventLog, dead: FakeDeadLetters
) -> None:
    delivery = FakeDelivery(event("a", 1), b'{"type": "Nonsense", "v": 1}')

    outcome = await recorder.record([delivery])

    assert log.seqs("a") == [1] and delivery.acked and outcome.dead == 1
    ((body, reason),) = dead.parked
    assert b"Nonsense" in body and "unknown event type 'Nonsense'" in reason


async def test_a_message_that_is_not_json_is_parked_whole(
    recorder: EventRecorder, dead: FakeDeadLetters
) -> None:
    delivery = FakeDelivery()
    delivery.events = read_envelope(b"\x00 not json")

    await recorder.record([delivery])

    assert delivery.acked
    assert "not JSON" in dead.parked[0][1]


async def test_nothing_is_settled_while_the_store_fails_and_all_is_kept_for_a_retry(
    recorder: EventRecorder, log: FakeEventLog
) -> None:
    delivery = FakeDelivery(event("a", 1), event("a", 2))
    log.failing = True

    with pytest.raises(ConnectionError):
        await recorder.record([delivery])
    assert not delivery.acked and recorder.held == 2

    log.failing = False
    await recorder.record([])

    assert log.seqs("a") == [1, 2] and delivery.acked


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"student": "L" * 300}, "student must be 1 to 64 characters"),
        ({"seq": 0}, "seq must be from 1"),
        ({"v": 0}, "version 0 is not between 1"),
        ({"answer": "x" * 70_000}, "over 65536"),
        # What the read models could not hold would stop every projection.
        ({"answer": "x" * 600}, "answer is over 512 characters"),
        ({"course": "c" * 5000}, "course is over 64 characters"),
        ({"skill": "k" * 65}, "skill is over 64 characters"),
        ({"student": "bad "}, "student 'bad ' has spaces at an end"),
        ({"course": " c"}, "course ' c' has spaces at an end"),
        ({"occurred_at": 1e300}, "occurred_at 1e+300 is not a time"),
        ({"occurred_at": -1e12}, "is not a time"),
        ({"attempt": 2**40}, "attempt 1099511627776 is out of range"),
    ],
)
async def test_an_event_the_store_could_not_keep_is_parked_not_retried(
    recorder: EventRecorder,
    log: FakeEventLog,
    dead: FakeDeadLetters,
    change: dict[str, object],
    says: str,
) -> None:
    fields = json.loads(event("bad", 1))
    fields.update(change)
    if {"answer", "attempt"} & change.keys():
        fields["type"], fields["v"] = "AnswerSubmitted", 2
        fields.setdefault("answer", "42")
        fields.update(
            {"node": "n", "skill": "k", "correct": True, "attempt": 1}
            | {"seconds_taken": 1.0, **change}
        )
    delivery = FakeDelivery(json.dumps(fields).encode(), event("good", 1))

    await recorder.record([delivery])

    assert log.seqs("good") == [1] and delivery.acked
    assert says in dead.parked[0][1]


async def test_an_event_whose_gap_never_fills_is_parked_in_the_end(
    recorder: EventRecorder, log: FakeEventLog, dead: FakeDeadLetters, clock: Clock
) -> None:
    recorder.give_up_on_gap_seconds = 600
    for attempt in range(30):
        delivery = FakeDelivery(event("a", 5))
        clock.now = attempt * 31
        await recorder.record([delivery])
        clock.now += 31
        await recorder.record([])
        if delivery.acked:
            break
        assert delivery.given_back

    assert delivery.acked and log.seqs("a") == []
    assert "waited" in dead.parked[0][1] and "never came" in dead.parked[0][1]


async def test_another_event_under_a_recorded_seq_is_parked_not_dropped(
    recorder: EventRecorder, log: FakeEventLog, dead: FakeDeadLetters
) -> None:
    await recorder.record([FakeDelivery(event("a", 1))])
    reused = FakeDelivery(event("a", 1, message_id="after-a-lost-session"))

    outcome = await recorder.record([reused])

    assert reused.acked and log.seqs("a") == [1] and outcome.dead == 1
    assert "already holds another event" in dead.parked[0][1]


async def test_two_events_under_one_seq_in_one_batch_keep_the_first_park_the_other(
    recorder: EventRecorder, log: FakeEventLog, dead: FakeDeadLetters
) -> None:
    first = event("a", 1)
    other = event("a", 1, message_id="after-a-lost-session")
    copy = FakeDelivery(first)
    together = FakeDelivery(first, other)

    outcome = await recorder.record([together, copy])

    recorded = [json.loads(r.state)["event_id"] for r in log.records]
    assert recorded == [json.loads(first)["event_id"]]
    assert [body for body, _ in dead.parked] == [other]
    assert "already taken by another event" in dead.parked[0][1]
    assert outcome.dead == 1 and outcome.duplicates == 1
    assert together.acked and copy.acked


async def test_a_lookup_that_fails_after_the_append_settles_everything_on_retry(
    recorder: EventRecorder, log: FakeEventLog
) -> None:
    await recorder.record([FakeDelivery(event("a", 1))])
    # A redelivery of a:1 (looked up for its identity) beside a new b:1.
    mixed = FakeDelivery(event("a", 1), event("b", 1))
    log.lookups_failing = 1

    with pytest.raises(ConnectionError):
        await recorder.record([mixed])
    assert not mixed.acked and recorder.held == 2

    await recorder.record([])

    assert mixed.acked and recorder.held == 0
    assert log.seqs("a") == [1] and log.seqs("b") == [1]


async def test_a_dead_letter_that_cannot_be_sent_is_sent_on_retry(
    recorder: EventRecorder, log: FakeEventLog, dead: FakeDeadLetters
) -> None:
    await recorder.record([FakeDelivery(event("a", 1))])
    reused = FakeDelivery(event("a", 1, message_id="after-a-lost-session"))
    other = FakeDelivery(event("c", 1))
    dead.failing = 1

    with pytest.raises(ConnectionError):
        await recorder.record([reused, other])
    await recorder.record([])

    assert reused.acked and other.acked and recorder.held == 0
    assert len(dead.parked) == 1 and log.seqs("c") == [1]
