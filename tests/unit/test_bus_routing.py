"""Which queue a student's events take, and how a relay batch becomes bus messages."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tutorlane.adapters.rabbitmq import ENVELOPE, envelopes, queue_of
from tutorlane.adapters.redis_sessions import shard_of
from tutorlane.commands.ports import BusMessage

students = st.text(min_size=1, max_size=24)


@given(st.lists(students, min_size=1, max_size=50), st.sampled_from([8, 16, 32, 64]))
def test_a_shards_students_share_one_queue_when_queues_divide_shards(
    group: list[str], shards: int
) -> None:
    for queues in (1, 2, 4, 8):
        by_shard: dict[int, set[int]] = {}
        for student in group:
            shard = shard_of(student, shards)
            by_shard.setdefault(shard, set()).add(queue_of(student, queues))
        assert all(len(queue_set) == 1 for queue_set in by_shard.values())


def test_a_batch_read_from_one_shard_is_one_bus_message() -> None:
    shard_zero = [f"s-{n}" for n in range(5000) if shard_of(f"s-{n}", 16) == 0]
    batch = [
        BusMessage(f"e-{n}", student, 1, f'{{"n":{n}}}'.encode())
        for n, student in enumerate(shard_zero[:300])
    ]

    messages = list(envelopes(batch, queues=8))

    assert len(messages) == 1
    queue, bodies = messages[0]
    assert queue == queue_of(shard_zero[0], 8)
    assert bodies == [item.body for item in batch]
    assert len(batch) < ENVELOPE
