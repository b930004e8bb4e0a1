"""`tutorlane dead-letters show`, `replay` and `export` on the local RabbitMQ.

Parks what the worker and RabbitMQ park (a single event with the worker's reason, a
whole bus message without one, an unreadable outbox entry), then runs the commands
as a user would and reads what reached the shard queues and what stayed parked.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest

from tutorlane.adapters.codecs import decode_envelope, encode_envelope, event_to_json
from tutorlane.adapters.rabbitmq import RabbitMQPublisher, Topology, queue_of
from tutorlane.domain.events import HintGiven, event_id_for

TOPOLOGY = Topology(f"tutorlane-dead-test-{os.getpid()}", 2)
WAITED = "seq 2 of student ana waited 600s for an earlier event that never came"
UNREADABLE = "outbox entry 1-0 unreadable: DecodeError: truncated"


def hint(student: str, seq: int) -> bytes:
    return event_to_json(
        HintGiven(
            event_id=event_id_for(student, f"m{seq}", seq),
            student=student,
            seq=seq,
            message_id=f"m{seq}",
            occurred_at=1.0,
            course="c",
            node="n",
            skill="k",
            hint_number=1,
        )
    )


@pytest.fixture
async def channel(rabbitmq_url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        await TOPOLOGY.delete(channel)
        await TOPOLOGY.declare(channel)
        yield channel
        await TOPOLOGY.delete(channel)


def tutorlane(rabbitmq_url: str, *args: str) -> str:
    env = {
        **os.environ,
        "TUTORLANE_AMQP_URL": rabbitmq_url,
        "TUTORLANE_BUS_NAME": TOPOLOGY.name,
        "TUTORLANE_QUEUES": str(TOPOLOGY.queues),
    }
    ran = subprocess.run(
        [sys.executable, "-m", "tutorlane", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return ran.stdout


async def queued(channel: aio_pika.abc.AbstractChannel, name: str) -> list[bytes]:
    """Take every message of a queue, acknowledged, in order."""
    queue = await channel.get_queue(name)
    bodies = []
    while (message := await queue.get(fail=False)) is not None:
        await message.ack()
        bodies.append(message.body)
    return bodies


async def test_replay_sends_parked_events_back_and_keeps_what_is_unreadable(
    rabbitmq_url: str, channel: aio_pika.abc.AbstractChannel
) -> None:
    publisher = RabbitMQPublisher(rabbitmq_url, TOPOLOGY)
    await publisher.dead_letter(hint("ana", 2), WAITED)
    await publisher.dead_letter(b"\x93\x01", UNREADABLE)
    dead = await channel.get_exchange(TOPOLOGY.dead)
    whole = encode_envelope([hint("ben", 1), hint("ben", 2)])
    await dead.publish(aio_pika.Message(whole), routing_key="")
    await publisher.close()

    shown = tutorlane(rabbitmq_url, "dead-letters", "show")
    assert f"3 parked in {TOPOLOGY.dead}" in shown
    assert WAITED in shown and UNREADABLE in shown
    assert "parked without a reason" in shown

    replayed = tutorlane(rabbitmq_url, "dead-letters", "replay")
    assert "replayed 2 messages (3 events); 1 still unreadable" in replayed

    arrived = {}
    for index in range(TOPOLOGY.queues):
        for body in await queued(channel, TOPOLOGY.queue_name(index)):
            for event in decode_envelope(body):
                arrived[event] = index
    assert arrived == {
        hint("ana", 2): queue_of("ana", TOPOLOGY.queues),
        hint("ben", 1): queue_of("ben", TOPOLOGY.queues),
        hint("ben", 2): queue_of("ben", TOPOLOGY.queues),
    }

    # The unreadable one is still parked, once, with its reason.
    left = tutorlane(rabbitmq_url, "dead-letters", "show")
    assert f"1 parked in {TOPOLOGY.dead}" in left
    assert UNREADABLE in left
    assert await queued(channel, TOPOLOGY.dead) == [b"\x93\x01"]


async def test_show_leaves_every_message_parked_in_order(
    rabbitmq_url: str, channel: aio_pika.abc.AbstractChannel
) -> None:
    publisher = RabbitMQPublisher(rabbitmq_url, TOPOLOGY)
    for seq in (1, 2, 3):
        await publisher.dead_letter(hint("cy", seq), f"reason {seq}")
    await publisher.close()

    first_two = tutorlane(rabbitmq_url, "dead-letters", "show", "--limit", "2")
    assert "holds 2 or more; the oldest 2:" in first_two
    assert "reason 1" in first_two and "reason 3" not in first_two
    assert f"3 parked in {TOPOLOGY.dead}" in tutorlane(
        rabbitmq_url, "dead-letters", "show"
    )

    bodies = await queued(channel, TOPOLOGY.dead)
    assert bodies == [hint("cy", 1), hint("cy", 2), hint("cy", 3)]


async def test_export_keeps_a_copy_and_removes_only_when_asked(
    rabbitmq_url: str, channel: aio_pika.abc.AbstractChannel, tmp_path: Path
) -> None:
    publisher = RabbitMQPublisher(rabbitmq_url, TOPOLOGY)
    await publisher.dead_letter(b"\x93\x01", UNREADABLE)
    await publisher.dead_letter(hint("di", 1), WAITED)
    await publisher.close()

    kept = tmp_path / "kept.jsonl"
    said = tutorlane(rabbitmq_url, "dead-letters", "export", str(kept))
    assert f"2 messages written to {kept}, still parked" in said
    assert f"2 parked in {TOPOLOGY.dead}" in tutorlane(
        rabbitmq_url, "dead-letters", "show"
    )

    removed = tmp_path / "removed.jsonl"
    said = tutorlane(rabbitmq_url, "dead-letters", "export", str(removed), "--remove")
    assert "2 messages written" in said and "removed from" in said
    lines = [json.loads(line) for line in removed.read_text().splitlines()]
    assert [(line["reason"], base64.b64decode(line["body"])) for line in lines] == [
        (UNREADABLE, b"\x93\x01"),
        (WAITED, hint("di", 1)),
    ]
    assert await queued(channel, TOPOLOGY.dead) == []

    # An existing file is never overwritten, and a file that cannot be written is
    # said so in a line.
    with pytest.raises(subprocess.CalledProcessError) as refused:
        tutorlane(rabbitmq_url, "dead-letters", "export", str(kept))
    assert "exists" in refused.value.stderr
    nowhere = tmp_path / "no" / "such" / "folder.jsonl"
    with pytest.raises(subprocess.CalledProcessError) as refused:
        tutorlane(rabbitmq_url, "dead-letters", "export", str(nowhere))
    assert "cannot write" in refused.value.stderr
    assert "Traceback" not in refused.value.stderr
