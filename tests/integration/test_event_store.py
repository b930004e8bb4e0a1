"""The event store the worker appends to and projections follow, on both databases."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from eventsourcing.persistence import IntegrityError

from tutorlane.adapters import event_store
from tutorlane.adapters.event_store import (
    EventStore,
    RecordedEvent,
    open_event_store,
)
from tutorlane.commands.ports import NewRecord

# Tables of this run only: database `test` is shared with other tests and people.
TABLE = f"es_test_{os.getpid()}_events"


def drop_tables(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            for name in (TABLE, f"{TABLE}_lock"):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "mariadb"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/var/events.db"
        return
    mariadb_url: str = request.getfixturevalue("mariadb_url")
    drop_tables(mariadb_url)
    yield mariadb_url
    drop_tables(mariadb_url)


@pytest.fixture
def store(url: str) -> Iterator[EventStore]:
    store = open_event_store(url, table_name=TABLE)
    yield store
    store.close()


def event(student: str, seq: int, topic: str = "AnswerSubmitted/v1") -> NewRecord:
    state = f'{{"student":"{student}","seq":{seq}}}'.encode()
    return NewRecord(student=student, seq=seq, topic=topic, state=state)


def read_all(store: EventStore, after: int = 0) -> list[RecordedEvent]:
    events: list[RecordedEvent] = []
    while batch := store.read(after, 7):
        events.extend(batch)
        after = batch[-1].notification_id
    return events


def test_an_empty_store_has_nothing_to_read(store: EventStore) -> None:
    assert store.read(0, 10) == []
    assert store.max_notification_id() == 0
    assert store.count() == 0


def test_appended_events_read_back_in_order(store: EventStore) -> None:
    batch = [event("ana", 1), event("ben", 1), event("ana", 2, "HintGiven/v1")]
    store.append(batch)
    store.append([event("ben", 2), event("cyd", 1)])

    events = read_all(store)

    assert [(e.student, e.seq, e.topic, e.state) for e in events] == [
        (new.student, new.seq, new.topic, new.state)
        for new in [*batch, event("ben", 2), event("cyd", 1)]
    ]
    ids = [e.notification_id for e in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    assert store.max_notification_id() == ids[-1]
    assert store.count() == 5


def test_reading_after_an_id_returns_only_later_events(store: EventStore) -> None:
    store.append([event("ana", seq) for seq in range(1, 6)])
    ids = [e.notification_id for e in store.read(0, 10)]

    later = store.read(ids[1], 2)

    assert [e.notification_id for e in later] == ids[2:4]
    assert [e.seq for e in later] == [3, 4]


def test_a_students_events_read_whole_or_after_a_seq(store: EventStore) -> None:
    store.append([event("ana", 1), event("ben", 1), event("ana", 2)])
    store.append([event("ana", 3), event("ben", 2)])

    assert [e.seq for e in store.events_of("ana")] == [1, 2, 3]
    assert [e.seq for e in store.events_of("ana", after_seq=1)] == [2, 3]
    assert [e.student for e in store.events_of("ben", after_seq=1)] == ["ben"]
    assert store.events_of("ana", after_seq=3) == []
    assert store.events_of("cyd") == []


def test_many_students_events_after_their_own_seq_in_one_call(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_store, "STUDENTS_PER_QUERY", 2)  # several queries
    students = [f"s{number}" for number in range(5)]
    store.append([event(student, seq) for seq in (1, 2, 3) for student in students])

    found = store.events_after({"s0": 0, "s1": 2, "s2": 3, "s4": 1, "nobody": 0})

    assert {student: [e.seq for e in events] for student, events in found.items()} == {
        "s0": [1, 2, 3],
        "s1": [3],
        "s2": [],
        "s4": [2, 3],
        "nobody": [],
    }
    assert all(e.student == "s4" for e in found["s4"])


def test_last_seqs_gives_each_students_highest_seq_or_zero(store: EventStore) -> None:
    store.append([event("ana", 1), event("ana", 2), event("ben", 1)])
    store.append([event("ana", 3)])

    assert store.last_seqs(["ana", "ben", "cyd"]) == {"ana": 3, "ben": 1, "cyd": 0}
    assert store.last_seqs([]) == {}


def test_last_seqs_answers_for_more_students_than_one_in_list(
    store: EventStore,
) -> None:
    students = [f"student-{number}" for number in range(2500)]
    store.append([event(student, 1) for student in students[::2]])

    seqs = store.last_seqs(students)

    assert len(seqs) == 2500
    assert all(seqs[student] == 1 for student in students[::2])
    assert all(seqs[student] == 0 for student in students[1::2])


def test_a_duplicate_seq_in_a_batch_raises_and_writes_nothing(
    store: EventStore,
) -> None:
    with pytest.raises(IntegrityError):
        store.append([event("ana", 1), event("ben", 1), event("ana", 1)])

    assert store.count() == 0
    assert store.last_seqs(["ana", "ben"]) == {"ana": 0, "ben": 0}


def test_a_seq_already_stored_fails_the_whole_batch(store: EventStore) -> None:
    store.append([event("ana", 1)])

    with pytest.raises(IntegrityError):
        store.append([event("ben", 1), event("ana", 2), event("ana", 1)])

    assert [(e.student, e.seq) for e in read_all(store)] == [("ana", 1)]
    assert store.last_seqs(["ana", "ben"]) == {"ana": 1, "ben": 0}


def test_a_state_beyond_a_plain_blob_is_kept_whole(store: EventStore) -> None:
    # A plain BLOB on MariaDB stops at 64 KiB; a larger state must not be cut.
    state = bytes(range(256)) * 4096
    store.append([NewRecord("ana", 1, "AnalystNoted/v1", state)])

    (stored,) = store.read(0, 1)

    assert stored.state == state


def test_a_batch_larger_than_one_statement_keeps_its_order(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tutorlane.adapters.event_store.MAX_STATEMENT_STATE_BYTES", 100)
    batch = [event("ana", seq) for seq in range(1, 51)]

    store.append(batch)

    assert [e.seq for e in read_all(store)] == list(range(1, 51))


def test_opening_a_sqlite_store_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "var" / "events.db"

    store = open_event_store(f"sqlite:///{path}")
    store.append([event("ana", 1)])
    store.close()

    assert path.exists()


def test_an_in_memory_sqlite_store_is_refused() -> None:
    with pytest.raises(ValueError, match="in-memory"):
        open_event_store("sqlite://")


class LateCommit:
    """Writer A takes its ids first but commits after writer B tries to write.

    A holds its transaction open in SQLAlchemy's `commit` hook, until B has
    returned or half a second has passed, and then until the reader has seen B's
    events or another half second has passed. A reader polls all the while.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.batch_a = [event(f"a-{number}", 1) for number in range(20)]
        self.batch_b = [event(f"b-{number}", 1) for number in range(20)]
        self.a_inserted = threading.Event()
        self.b_returned = threading.Event()
        self.reader_saw_b = threading.Event()
        self.writers_done = threading.Event()
        self.seen: list[RecordedEvent] = []
        self.errors: list[BaseException] = []
        self.writer_a = threading.Thread(target=self.write_a)
        self.writer_b = threading.Thread(target=self.write_b)
        self.reader = threading.Thread(target=self.follow)

    def hold_a_before_commit(self, connection: Any) -> None:
        if threading.current_thread() is not self.writer_a:
            return
        self.a_inserted.set()
        self.b_returned.wait(0.5)
        self.reader_saw_b.wait(0.5)

    def write_a(self) -> None:
        try:
            self.store.append(self.batch_a)
        except BaseException as ex:
            self.errors.append(ex)
            self.a_inserted.set()

    def write_b(self) -> None:
        try:
            self.store.append(self.batch_b)
        except BaseException as ex:
            self.errors.append(ex)
        finally:
            self.b_returned.set()

    def follow(self) -> None:
        after = 0
        try:
            while True:
                done = self.writers_done.is_set()
                batch = self.store.read(after, 8)
                if batch:
                    self.seen.extend(batch)
                    after = batch[-1].notification_id
                    if any(e.student.startswith("b-") for e in batch):
                        self.reader_saw_b.set()
                elif done:
                    return
                else:
                    time.sleep(0.002)
        except BaseException as ex:
            self.errors.append(ex)

    def run(self) -> None:
        engine = self.store.recorder.datastore.engine
        sa.event.listen(engine, "commit", self.hold_a_before_commit)
        try:
            self.reader.start()
            self.writer_a.start()
            assert self.a_inserted.wait(10)
            self.writer_b.start()
            self.writer_a.join(30)
            self.writer_b.join(30)
        finally:
            self.writers_done.set()
            self.reader.join(30)
            sa.event.remove(engine, "commit", self.hold_a_before_commit)
        assert not self.errors, self.errors

    def unseen(self) -> set[str]:
        """Return the students whose event the reader never saw."""
        appended = {e.student for e in [*self.batch_a, *self.batch_b]}
        return appended - {e.student for e in self.seen}


def test_a_reader_sees_every_event_when_a_lower_id_commits_late(
    store: EventStore,
) -> None:
    late_commit = LateCommit(store)

    late_commit.run()

    ids = [e.notification_id for e in late_commit.seen]
    assert late_commit.unseen() == set()
    assert len(late_commit.seen) == store.count() == 40
    assert ids == sorted(set(ids))
    # A's batch went first: B waited for A's commit instead of overtaking it.
    assert [e.student[0] for e in late_commit.seen] == ["a"] * 20 + ["b"] * 20


def test_without_the_writer_lock_a_late_commit_is_skipped(
    mariadb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Proves the test above can fail: MariaDB hands out ids at insert, so without
    # the lock B commits higher ids first and the reader steps over A's for good.
    # MariaDB only: SQLite serialises writers by itself, there is no race to show.
    drop_tables(mariadb_url)
    store = open_event_store(mariadb_url, table_name=TABLE)
    monkeypatch.setattr(store.recorder, "_take_writer_lock", lambda connection: None)
    late_commit = LateCommit(store)

    try:
        late_commit.run()

        assert late_commit.unseen() == {e.student for e in late_commit.batch_a}
        assert store.count() == 40
    finally:
        store.close()
        drop_tables(mariadb_url)


def test_a_follower_sees_every_event_of_concurrent_writers_once(
    store: EventStore,
) -> None:
    writers, batches, batch_size = 4, 15, 40
    done = threading.Event()
    seen: list[RecordedEvent] = []
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            for batch in range(batches):
                store.append(
                    [
                        event(f"w{writer}-{batch}-{number}", 1)
                        for number in range(batch_size)
                    ]
                )
        except BaseException as ex:
            errors.append(ex)

    def follow() -> None:
        after = 0
        while True:
            finished = done.is_set()
            batch = store.read(after, 25)
            seen.extend(batch)
            if batch:
                after = batch[-1].notification_id
            elif finished:
                return

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    follower = threading.Thread(target=follow)
    follower.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    done.set()
    follower.join(60)

    assert not errors, errors
    assert len(seen) == len({e.student for e in seen}) == writers * batches * batch_size


def test_event_ids_are_read_back_by_student_and_seq(store: EventStore) -> None:
    def with_id(student: str, seq: int) -> NewRecord:
        state = json.dumps({"event_id": f"{student}-{seq}"}).encode()
        return NewRecord(student, seq, "HintGiven/v1", state)

    store.append([with_id("ana", 1), with_id("ana", 2), with_id("bo", 1)])

    found = store.event_ids([("ana", 2), ("bo", 1), ("bo", 7)])

    assert found == {("ana", 2): "ana-2", ("bo", 1): "bo-1"}
