"""The session store, the fast lane and the event outbox on a Redis Cluster.

The test starts a cluster of three masters on loopback ports in a temporary folder
(`redis-server --cluster-enabled yes`, joined by `redis-cli --cluster create`) and
removes it after. A cluster refuses a Lua script whose keys lie in more than one
slot (CROSSSLOT), so every commit passing here is a commit that touched one slot;
the keys each script call gets are also checked to share one slot.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, ResponseError

from tutorlane.adapters.redis_event_outbox import RedisEventOutbox
from tutorlane.adapters.redis_sessions import RedisSessionStore, shard_of
from tutorlane.bootstrap import connect_redis
from tutorlane.commands.handle_message import MessageHandler
from tutorlane.commands.ports import SessionPlan, VersionConflict
from tutorlane.domain.course import Course, parse_course
from tutorlane.domain.messages import Inbound, Kind, Reply
from tutorlane.domain.session import Session, next_version
from tutorlane.entrypoints.settings import Settings
from tutorlane.tests.courses import TINY_COURSE

MASTERS = 3
PHONE = "+919800000001"
NOW = 1_700_000_000.0


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ports() -> list[int]:
    """Pick ports whose cluster bus ports (port + 10000) are free as well."""
    ports: list[int] = []
    while len(ports) < MASTERS:
        port = random.randint(21000, 29000)
        if port not in ports and _port_free(port) and _port_free(port + 10000):
            ports.append(port)
    return ports


def _redis_binaries() -> tuple[str, str]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server and cli:
        return server, cli
    message = "redis-server and redis-cli are not installed (apt-get install redis)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true requires them", pytrace=False)
    pytest.skip(message)


def _wait_cluster_ok(cli: str, ports: list[int], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        states = [
            subprocess.run(
                [cli, "-p", str(port), "cluster", "info"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            for port in ports
        ]
        if all("cluster_state:ok" in state for state in states):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the Redis cluster on {ports} did not become ready")


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start a three-master Redis Cluster on loopback; remove it after."""
    server, cli = _redis_binaries()
    folder = Path(tmp_path_factory.mktemp("redis-cluster"))
    ports = _cluster_ports()
    processes = []
    try:
        for port in ports:
            node = folder / str(port)
            node.mkdir()
            command = [
                server,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(node / "nodes.conf"),
                "--cluster-node-timeout", "5000",
                "--dir", str(node),
                "--save", "",
                "--appendonly", "no",
            ]  # fmt: skip
            log = (node / "redis.log").open("wb")
            processes.append(subprocess.Popen(command, stdout=log, stderr=log))
        for port in ports:
            _wait_port(port, processes)
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{port}" for port in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            check=True,
            timeout=60,
        )  # fmt: skip
        _wait_cluster_ok(cli, ports)
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_port(port: int, processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            raise RuntimeError("a redis-server of the cluster exited at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} did not start")


@pytest.fixture
async def cluster(cluster_url: str) -> AsyncIterator[RedisCluster]:
    """A cluster client from the same settings `tutorlane serve` reads."""
    settings = Settings(redis_url=cluster_url, redis_cluster=True)
    client = connect_redis(settings)
    assert isinstance(client, RedisCluster)
    await client.flushall()
    yield client
    await client.aclose()


class SlotChecks:
    """Records the keys of every Lua script call and the slots they hash to."""

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []

    def slots(self) -> list[set[int]]:
        """Return, per call, the set of slots its keys hash to."""
        return [{key_slot(str(key).encode()) for key in keys} for keys in self.calls]


@pytest.fixture
def slot_checks(monkeypatch: pytest.MonkeyPatch) -> SlotChecks:
    """Watch every script a RedisSessionStore runs."""
    checks = SlotChecks()
    real_init = RedisSessionStore.__init__

    def watched_init(store: RedisSessionStore, *args: Any, **kwargs: Any) -> None:
        real_init(store, *args, **kwargs)
        script = store._commit

        async def watched(keys: list[Any], args: list[Any]) -> Any:
            checks.calls.append(list(keys))
            return await script(keys=keys, args=args)

        store._commit = watched  # type: ignore[assignment]

    monkeypatch.setattr(RedisSessionStore, "__init__", watched_init)
    return checks


@pytest.fixture
def course() -> Course:
    return parse_course(TINY_COURSE, "tiny.yaml")


def keyed_by_phone(phone: str) -> str:
    return f"pseudo-{phone[-6:]}"


async def test_the_cluster_refuses_a_script_whose_keys_span_two_slots(
    cluster: RedisCluster,
) -> None:
    # The control: this is what every commit below would meet if it crossed slots.
    assert key_slot(b"tl:{s00}:r") != key_slot(b"tl:{s01}:r")
    with pytest.raises((RedisClusterException, ResponseError)):
        await cluster.eval("return 1", 2, "tl:{s00}:r", "tl:{s01}:r")


async def test_commits_of_students_in_every_shard_touch_one_slot_each(
    cluster: RedisCluster, slot_checks: SlotChecks
) -> None:
    store = RedisSessionStore(cluster, shards=16)
    students = [f"pseudo-{n}" for n in range(200)]

    entries = [
        await store.commit(student, 0, Session(version=1), PHONE, Reply("hi"), [])
        for student in students
    ]

    assert len(entries) == len(students)
    assert {shard_of(student, 16) for student in students} == set(range(16))
    assert len(slot_checks.calls) == len(students)
    assert all(len(slots) == 1 for slots in slot_checks.slots())
    masters = {node.name for node in cluster.get_primaries()}
    nodes = [cluster.get_node_from_key(store.session_key(s)) for s in students]
    used = {node.name for node in nodes if node is not None}
    assert used == masters, "the shards spread over all three masters"


async def test_the_session_store_keeps_its_contract_on_a_cluster(
    cluster: RedisCluster,
) -> None:
    store = RedisSessionStore(cluster, shards=16)
    session = Session(version=1, node="add-1", recent=(b"x",))
    entry_id = await store.commit("pseudo-1", 0, session, PHONE, Reply("one"), [])

    assert await store.load("pseudo-1") == session
    with pytest.raises(VersionConflict):
        await store.commit("pseudo-1", 0, session, PHONE, Reply("two"), [])
    shard = shard_of("pseudo-1", 16)
    (pending,) = await store.unconfirmed(shard, time.time() + 60, 10)
    assert pending.entry_id == entry_id
    assert await store.lease(shard, "me", 5.0)
    assert not await store.lease(shard, "someone else", 5.0)

    await store.confirm("pseudo-1", entry_id)

    assert await store.unconfirmed(shard, time.time() + 60, 10) == []
    assert await store.outbox_sizes() == {"replies": 0, "events": 0}


async def test_an_unreadable_reply_is_set_aside_on_a_cluster(
    cluster: RedisCluster,
) -> None:
    store = RedisSessionStore(cluster, shards=16)
    await store.commit("pseudo-1", 0, Session(version=1), PHONE, Reply("x"), [])
    shard = shard_of("pseudo-1", 16)
    await cluster.xadd(store.replies_key(shard), {"s": "someone", "r": "garbage"})

    pending = await store.unconfirmed(shard, time.time() + 60, 10)

    assert len(pending) == 1
    assert await cluster.xlen(store.replies_key(shard)) == 1


async def test_a_batch_of_plans_is_written_across_the_masters_of_a_cluster(
    cluster: RedisCluster,
) -> None:
    store = RedisSessionStore(cluster, shards=16)
    students = [f"pseudo-{n}" for n in range(48)]
    for student in students:
        await store.commit(
            student, 0, Session(version=1, node="add-1"), PHONE, Reply("hi"), []
        )
    sessions = await store.load_many(students)
    # One student's session moves on between the read and the write.
    await store.commit(
        students[7], 1, Session(version=2, node="add-2"), PHONE, Reply("next"), []
    )

    written = await store.write_plans(
        [
            SessionPlan(student, session, ("add-2",))
            for student, session in zip(students, sessions, strict=True)
            if session is not None
        ]
    )

    assert written == [student != students[7] for student in students]
    after = [await store.load(student) for student in students]
    assert [(s.version, s.plan, s.plan_for) for s in after] == [
        (2, (), "") if student == students[7] else (2, ("add-2",), "add-1")
        for student in students
    ]
    nodes = [cluster.get_node_from_key(store.session_key(s)) for s in students]
    assert len({node.name for node in nodes if node is not None}) == MASTERS


async def test_the_fast_lane_handles_students_on_a_cluster(
    cluster: RedisCluster, course: Course, slot_checks: SlotChecks
) -> None:
    store = RedisSessionStore(cluster, shards=16)
    handler = MessageHandler(store, course, keyed_by_phone, clock=lambda: NOW)
    phones = [f"+9198{n:08d}" for n in range(30)]

    greeted = await asyncio.gather(
        *(
            handler.handle(phone, Inbound(f"hi-{phone}", Kind.TEXT, "hi"))
            for phone in phones
        )
    )
    answered = await asyncio.gather(
        *(
            handler.handle(phone, Inbound(f"a-{phone}", Kind.TEXT, "15"))
            for phone in phones
        )
    )

    assert all(item.reply is not None for item in greeted + answered)
    sessions = [await store.load(keyed_by_phone(phone)) for phone in phones]
    # A new session starts at a version drawn for it, then counts up.
    seconds = [
        next_version(0, keyed_by_phone(phone), f"hi-{phone}", NOW) + 1
        for phone in phones
    ]
    assert [(s.version, s.answered, s.correct) for s in sessions] == [
        (second, 1, 1) for second in seconds
    ]
    assert all(len(slots) == 1 for slots in slot_checks.slots())


async def test_messages_of_one_student_at_once_lose_no_update_on_a_cluster(
    cluster: RedisCluster, course: Course
) -> None:
    store = RedisSessionStore(cluster, shards=16)
    handler = MessageHandler(store, course, keyed_by_phone)
    await handler.handle(PHONE, Inbound("start", Kind.TEXT, "hi"))
    first = (await store.load(keyed_by_phone(PHONE))).version

    messages = [Inbound(f"h-{i}", Kind.TEXT, "what?") for i in range(20)]
    await asyncio.gather(*(handler.handle(PHONE, message) for message in messages))
    assert (await store.load(keyed_by_phone(PHONE))).version == first + 20

    last = Inbound("last", Kind.TEXT, "what?")
    twice = await asyncio.gather(*(handler.handle(PHONE, last) for _ in range(3)))
    assert sum(result.reply is not None for result in twice) == 1
    assert (await store.load(keyed_by_phone(PHONE))).version == first + 21


async def test_the_relay_reads_and_trims_the_event_outbox_on_a_cluster(
    cluster: RedisCluster, course: Course
) -> None:
    store = RedisSessionStore(cluster, shards=16)
    outbox = RedisEventOutbox(cluster, shards=16)
    await outbox.ensure_groups()
    handler = MessageHandler(store, course, keyed_by_phone)
    phones = [f"+9197{n:08d}" for n in range(20)]
    for phone in phones:
        await handler.handle(phone, Inbound(f"hi-{phone}", Kind.TEXT, "hi"))

    entries = []
    for shard in range(16):
        read = await outbox.read(shard, "relay-1", 100, 10, pending=False)
        await outbox.acknowledge(shard, [entry.entry_id for entry in read])
        entries.extend(read)

    assert len(entries) == len(phones)
    students = {message.student for entry in entries for message in entry.messages}
    assert students == {keyed_by_phone(phone) for phone in phones}
    assert await outbox.length() == 0
    shard = shard_of(keyed_by_phone(phones[0]), 16)
    assert await cluster.xlen(store.events_key(shard)) == 0
