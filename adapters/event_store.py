"""The event store, system of record of every student's events: MariaDB or SQLite.

The recorders implement eventsourcing's persistence interfaces on SQLAlchemy Core, so
that the library's own contract tests run against them on both databases;
`EventStore` is the narrow face the worker and the projections use.

Notification ids become visible in order. MariaDB hands out AUTO_INCREMENT ids when a
row is inserted, not when it commits, so two writers could otherwise commit out of
order and a reader following the log would step over the later-committing lower id
for good. Every insert of events therefore first takes a row lock in a one-row table
and holds it to its commit: writers commit one after another, in id order. SQLite
serialises writers by itself; the same statement takes its write lock there.

Tables (names from `stored_events` by default): `stored_events` holds `id` (the
notification id), `originator_id` (16 bytes; for a student, a UUID5 of the
pseudonym), `originator_version` (the student's seq), `originator_name` (the
pseudonym, so that readers need not parse states), `topic` and `state` (MEDIUMBLOB
on MariaDB), unique on originator and version; `stored_events_lock` holds the one
lock row; process recorders add a tracking table, one row per upstream application.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections import deque
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from threading import Event
from typing import Any

import sqlalchemy as sa
from eventsourcing import persistence as es
from eventsourcing.utils import Environment, EnvType, resolve_topic, strtobool
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Dialect, Engine

from tutorlane.commands.ports import NewRecord

# NOTE: fixed forever: every student's originator id is derived from it, so a new
# namespace would split each student's history in two.
STUDENT_NAMESPACE = uuid.UUID("8c293c9d-48db-4983-96c6-23d69d2d19be")

DEFAULT_EVENTS_TABLE = "stored_events"
DEFAULT_TRACKING_TABLE = "notification_tracking"

# Rows go to the database in statements of at most this many bytes of state:
# MariaDB refuses a statement over max_allowed_packet (16 MiB by default), and
# escaping can double the size of binary data on the wire.
MAX_STATEMENT_STATE_BYTES = 4 * 1024 * 1024

# The IN list of one query; MariaDB and SQLite both take far more, this keeps
# statements short and plans simple.
MAX_IN_LIST = 1000
STUDENTS_PER_QUERY = 200

SQLITE_BUSY_TIMEOUT_SECONDS = 30.0

_MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}
_NOTIFICATION_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_VERSION = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# A plain BLOB on MariaDB stops at 64 KiB; MEDIUMBLOB holds 16 MiB.
_STATE = sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")

# SQLAlchemy's database errors, most specific first, and what eventsourcing calls them.
_ERRORS: tuple[tuple[type[sa.exc.DBAPIError], type[es.PersistenceError]], ...] = (
    (sa.exc.IntegrityError, es.IntegrityError),
    (sa.exc.DataError, es.DataError),
    (sa.exc.OperationalError, es.OperationalError),
    (sa.exc.ProgrammingError, es.ProgrammingError),
    (sa.exc.InternalError, es.InternalError),
    (sa.exc.NotSupportedError, es.NotSupportedError),
    (sa.exc.InterfaceError, es.InterfaceError),
    (sa.exc.DatabaseError, es.DatabaseError),
)


# NOTE: a batch names the same students again and again, and a UUID5 costs a SHA-1.
@functools.lru_cache(maxsize=65536)
def originator_id_of(student: str) -> uuid.UUID:
    """Return the originator id of a student's events (a UUID5 of the pseudonym)."""
    return uuid.uuid5(STUDENT_NAMESPACE, student)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored, at its place `notification_id` in the log of all events."""

    notification_id: int
    student: str
    seq: int
    topic: str
    state: bytes


class EventStore:
    """Every student's events: appended in batches, read back in notification order."""

    def __init__(self, recorder: SQLAlchemyApplicationRecorder) -> None:
        self.recorder = recorder

    def append(self, records: Sequence[NewRecord]) -> None:
        """Record the events in one transaction, all of them or none.

        Raises eventsourcing's `IntegrityError` if any (student, seq) is already
        stored or appears twice in `records`.
        """
        # NOTE: the parameter is named as in the worker's port (`EventLog` in
        # commands/ports.py), which this class implements.
        if not records:
            return
        stored_events = [
            es.StoredEvent(
                originator_id=originator_id_of(record.student),
                originator_version=record.seq,
                topic=record.topic,
                state=record.state,
            )
            for record in records
        ]
        self.recorder.insert_events(
            stored_events, originator_names=[record.student for record in records]
        )

    def last_seqs(self, students: Collection[str]) -> dict[str, int]:
        """Return the highest stored seq of each student, 0 for one with no event."""
        student_of = {originator_id_of(student): student for student in students}
        highest = self.recorder.max_originator_versions(student_of)
        return {
            student: highest.get(originator_id, 0)
            for originator_id, student in student_of.items()
        }

    def events_of(self, student: str, after_seq: int = 0) -> list[RecordedEvent]:
        """Return the events of one student numbered after `after_seq`, in order."""
        return self.events_after({student: after_seq})[student]

    def events_after(self, after: Mapping[str, int]) -> dict[str, list[RecordedEvent]]:
        """Return each student's events numbered after the seq given, in order.

        One connection and a query per STUDENTS_PER_QUERY students: the runner's
        agents ask this for every student of a batch.
        """
        table = self.recorder.events_table
        found: dict[str, list[RecordedEvent]] = {student: [] for student in after}
        students = list(after)
        with self.recorder.datastore.reading() as connection:
            for start in range(0, len(students), STUDENTS_PER_QUERY):
                wanted = sa.or_(
                    *(
                        sa.and_(
                            table.c.originator_id == originator_id_of(student),
                            table.c.originator_version > after[student],
                        )
                        for student in students[start : start + STUDENTS_PER_QUERY]
                    )
                )
                statement = (
                    _select_recorded(table)
                    .where(wanted)
                    .order_by(table.c.originator_id, table.c.originator_version)
                )
                for row in connection.execute(statement):
                    recorded = _recorded_event(*row)
                    found[recorded.student].append(recorded)
        return found

    def event_ids(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """Return the event id recorded under each (student, seq) that has one."""
        table = self.recorder.events_table
        found: dict[tuple[str, int], str] = {}
        wanted = [(originator_id_of(student), seq) for student, seq in keys]
        with self.recorder.datastore.reading() as connection:
            for start in range(0, len(wanted), MAX_IN_LIST):
                pairs = wanted[start : start + MAX_IN_LIST]
                statement = sa.select(
                    table.c.originator_name, table.c.originator_version, table.c.state
                ).where(
                    sa.tuple_(table.c.originator_id, table.c.originator_version).in_(
                        pairs
                    )
                )
                for student, seq, state in connection.execute(statement):
                    found[(student, int(seq))] = _event_id_in(state)
        return found

    def read(
        self, after_notification_id: int, limit: int, up_to: int | None = None
    ) -> list[RecordedEvent]:
        """Return up to `limit` events with ids above `after_notification_id`, in order.

        With `up_to`, no event with a higher id than that is returned.

        Ids have gaps (an insert rolled back on MariaDB uses its ids up), but no event
        ever appears below an id already returned: pass the last id read as
        `after_notification_id` to follow the log.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        table = self.recorder.events_table
        statement = (
            _select_recorded(table)
            .where(table.c.id > after_notification_id)
            .order_by(table.c.id)
            .limit(limit)
        )
        if up_to is not None:
            statement = statement.where(table.c.id <= up_to)
        with self.recorder.datastore.reading() as connection:
            rows = connection.execute(statement).all()
        return [_recorded_event(*row) for row in rows]

    def max_notification_id(self) -> int:
        """Return the id of the last event recorded, 0 when there is none."""
        return self.recorder.max_notification_id() or 0

    def count(self, after: int = 0, up_to: int | None = None) -> int:
        """Return how many events are stored with ids in (after, up_to]."""
        table = self.recorder.events_table
        statement = sa.select(sa.func.count()).select_from(table)
        if after:
            statement = statement.where(table.c.id > after)
        if up_to is not None:
            statement = statement.where(table.c.id <= up_to)
        with self.recorder.datastore.reading() as connection:
            return int(connection.execute(statement).scalar_one())

    def close(self) -> None:
        """Close the database connections."""
        self.recorder.datastore.close()


def open_event_store(url: str, *, table_name: str = DEFAULT_EVENTS_TABLE) -> EventStore:
    """Connect to the event store at `url`, migrating its schema to the newest.

    `url` is `mysql+mysqldb://user@host:3306/db?charset=utf8mb4` or
    `sqlite:///path/to/file.db` (the folder is created).
    """
    if table_name == DEFAULT_EVENTS_TABLE:
        # NOTE: imported here: the migrations module builds on this one.
        from tutorlane.adapters.schema import upgrade_database

        upgrade_database(url)
    datastore = SQLAlchemyDatastore(url)
    recorder = SQLAlchemyApplicationRecorder(datastore, events_table_name=table_name)
    if table_name != DEFAULT_EVENTS_TABLE:
        # Tables under other names (tests, experiments) are not migrated.
        recorder.create_table()
    return EventStore(recorder)


def _select_recorded(table: sa.Table) -> sa.Select[Any]:
    """Select the columns `_recorded_event` takes, in its order."""
    return sa.select(
        table.c.id,
        table.c.originator_name,
        table.c.originator_version,
        table.c.topic,
        table.c.state,
    )


def _recorded_event(
    notification_id: int,
    student: str | None,
    seq: int,
    topic: str,
    state: bytes,
) -> RecordedEvent:
    """Return a row of the events table as a `RecordedEvent`."""
    if student is None:
        raise es.DataError(
            f"event {notification_id} has no student: it was recorded through the "
            "plain eventsourcing recorder, not EventStore.append"
        )
    return RecordedEvent(notification_id, student, seq, topic, bytes(state))


class _UUIDBytes(sa.types.TypeDecorator[uuid.UUID]):
    """A UUID kept as its 16 bytes: half the width of its hex form in every index."""

    impl = sa.BINARY(16)
    cache_ok = True

    def process_bind_param(
        self, value: uuid.UUID | None, dialect: Dialect
    ) -> bytes | None:
        """Return the bytes stored for `value`."""
        return None if value is None else value.bytes

    def process_result_value(
        self, value: Any | None, dialect: Dialect
    ) -> uuid.UUID | None:
        """Return the UUID of stored bytes."""
        return None if value is None else uuid.UUID(bytes=bytes(value))


def _as_uuid(originator_id: uuid.UUID | str) -> uuid.UUID:
    """Return `originator_id`, refusing the string ids eventsourcing also allows."""
    if isinstance(originator_id, uuid.UUID):
        return originator_id
    raise NotImplementedError(
        f"originator id {originator_id!r} is a string: these recorders store UUIDs "
        "only (16 bytes in every index); derive one with uuid.uuid5"
    )


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Raise SQLAlchemy's database errors as eventsourcing's, which callers expect."""
    try:
        yield
    except sa.exc.DBAPIError as ex:
        # NOTE: the driver's message only: SQLAlchemy's own repeats the statement,
        # which for a batch is a thousand rows of values.
        message = str(ex.orig)
        for sqlalchemy_error, eventsourcing_error in _ERRORS:
            if isinstance(ex, sqlalchemy_error):
                raise eventsourcing_error(message) from ex
        raise es.PersistenceError(message) from ex


def _use_write_ahead_log(dbapi_connection: Any, _connection_record: Any) -> None:
    """Let SQLite readers go on while a batch is being written."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


def create_event_store_engine(url: str) -> Engine:
    """Return a SQLAlchemy engine for a MariaDB or SQLite-file event store."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
            raise ValueError(
                f"{url!r} is an in-memory SQLite database, which each connection sees "
                "empty; give a file, as in sqlite:///var/events.db"
            )
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
        )
        sa.event.listen(engine, "connect", _use_write_ahead_log)
        return engine
    if backend in ("mysql", "mariadb"):
        # NOTE: pre-ping and recycling, because the worker may sit idle for longer
        # than MariaDB's wait_timeout while the chat is quiet.
        return sa.create_engine(parsed, pool_pre_ping=True, pool_recycle=3600)
    raise NotImplementedError(
        f"the event store runs on MariaDB (mysql+mysqldb://...) or SQLite "
        f"(sqlite:///file.db), not {backend!r}: its writer lock and column types "
        "are written for those two"
    )


class SQLAlchemyDatastore:
    """One database reached through a SQLAlchemy engine, shared by its recorders."""

    def __init__(self, url: str) -> None:
        self.engine = create_event_store_engine(url)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """Yield a connection for reads; database errors become eventsourcing's."""
        with _translated_errors(), self.engine.connect() as connection:
            yield connection

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """Yield a connection in a transaction committed at the end of the block."""
        with _translated_errors(), self.engine.begin() as connection:
            yield connection

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


class _SQLAlchemyRecorder:
    """What all the recorders share: a datastore and the tables they create."""

    def __init__(self, datastore: SQLAlchemyDatastore) -> None:
        self.datastore = datastore
        self.metadata = sa.MetaData()

    def create_table(self) -> None:
        """Create this recorder's tables where they are missing."""
        with _translated_errors():
            self.metadata.create_all(self.datastore.engine, checkfirst=True)


class SQLAlchemyAggregateRecorder(_SQLAlchemyRecorder, es.AggregateRecorder):
    """Events of aggregates without notification ids (eventsourcing's snapshots)."""

    def __init__(
        self, datastore: SQLAlchemyDatastore, *, events_table_name: str
    ) -> None:
        super().__init__(datastore)
        self.events_table = self._define_events_table(events_table_name)

    def _define_events_table(self, name: str) -> sa.Table:
        """Define the events table: one row per event, keyed by originator."""
        return sa.Table(
            name,
            self.metadata,
            sa.Column("originator_id", _UUIDBytes(), primary_key=True),
            sa.Column("originator_version", _VERSION, primary_key=True),
            sa.Column("topic", sa.Text(), nullable=False),
            sa.Column("state", _STATE, nullable=False),
            **_MYSQL_TABLE_OPTIONS,
        )

    def insert_events(
        self, stored_events: Sequence[es.StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Record `stored_events` in one transaction; `IntegrityError` on a conflict."""
        if not stored_events:
            return None
        rows = [_event_row(event) for event in stored_events]
        with self.datastore.writing() as connection:
            connection.execute(sa.insert(self.events_table), rows)
        return None

    def select_events(
        self,
        originator_id: uuid.UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> list[es.StoredEvent]:
        """Return the events of one originator, by version."""
        table = self.events_table
        version = table.c.originator_version
        statement = sa.select(
            table.c.originator_id, version, table.c.topic, table.c.state
        ).where(table.c.originator_id == _as_uuid(originator_id))
        if gt is not None:
            statement = statement.where(version > gt)
        if lte is not None:
            statement = statement.where(version <= lte)
        statement = statement.order_by(version.desc() if desc else version)
        if limit is not None:
            statement = statement.limit(limit)
        with self.datastore.reading() as connection:
            rows = connection.execute(statement).all()
        return [
            es.StoredEvent(
                originator_id=row.originator_id,
                originator_version=row.originator_version,
                topic=row.topic,
                state=bytes(row.state),
            )
            for row in rows
        ]


class SQLAlchemyApplicationRecorder(
    SQLAlchemyAggregateRecorder, es.ApplicationRecorder
):
    """Events with notification ids that writers commit in order.

    Beside the events table sits `<events table>_lock`, one row that every insert of
    events updates first and so holds locked until its commit.
    """

    def __init__(
        self,
        datastore: SQLAlchemyDatastore,
        *,
        events_table_name: str = DEFAULT_EVENTS_TABLE,
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.lock_table = sa.Table(
            f"{events_table_name}_lock",
            self.metadata,
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
            # Counts the inserts of events: a by-product of taking the lock.
            sa.Column("inserts", sa.BigInteger(), nullable=False),
            **_MYSQL_TABLE_OPTIONS,
        )

    def _define_events_table(self, name: str) -> sa.Table:
        """Define the events table: a notification id in front of each event."""
        return sa.Table(
            name,
            self.metadata,
            sa.Column("id", _NOTIFICATION_ID, primary_key=True, autoincrement=True),
            sa.Column("originator_id", _UUIDBytes(), nullable=False),
            sa.Column("originator_version", _VERSION, nullable=False),
            # The readable key the originator id was derived from (a student's
            # pseudonym); NULL for events recorded through the plain recorder API.
            sa.Column("originator_name", sa.String(255), nullable=True),
            sa.Column("topic", sa.Text(), nullable=False),
            sa.Column("state", _STATE, nullable=False),
            sa.Index(
                f"{name}_originator_idx",
                "originator_id",
                "originator_version",
                unique=True,
            ),
            sqlite_autoincrement=True,
            **_MYSQL_TABLE_OPTIONS,
        )

    def create_table(self) -> None:
        """Create the tables where they are missing, and the lock's one row."""
        super().create_table()
        try:
            with self.datastore.writing() as connection:
                has_row = connection.execute(
                    sa.select(self.lock_table.c.id).where(self.lock_table.c.id == 1)
                ).first()
                if has_row is None:
                    connection.execute(
                        sa.insert(self.lock_table).values(id=1, inserts=0)
                    )
        except es.IntegrityError:
            pass  # Another process inserted the row first.

    def insert_events(
        self,
        stored_events: Sequence[es.StoredEvent],
        *,
        originator_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        """Record `stored_events` in one transaction and return their notification ids.

        `originator_names`, if given, holds the readable key of each event's
        originator, in the same order. Raises `IntegrityError` on a conflict.
        """
        if originator_names is not None and len(originator_names) != len(stored_events):
            raise ValueError(
                f"{len(originator_names)} originator names for "
                f"{len(stored_events)} events: give one name per event"
            )
        tracking: es.Tracking | None = kwargs.get("tracking")
        if not stored_events and tracking is None:
            return []
        with self.datastore.writing() as connection:
            if stored_events:
                self._take_writer_lock(connection)
            if tracking is not None:
                self._insert_tracking(connection, tracking)
            return self._insert_notifications(
                connection, stored_events, originator_names
            )

    def _take_writer_lock(self, connection: Connection) -> None:
        """Wait for the writer before this one to commit; hold the lock to commit."""
        lock = self.lock_table
        result = connection.execute(
            sa.update(lock).where(lock.c.id == 1).values(inserts=lock.c.inserts + 1)
        )
        if result.rowcount != 1:
            raise es.OperationalError(
                f"the lock row of table {lock.name} is missing, so writers would not "
                "be serialised; create_table() (or open_event_store) puts it back"
            )

    def _insert_tracking(self, connection: Connection, tracking: es.Tracking) -> None:
        """Record a position; only process recorders have a tracking table."""
        raise es.ProgrammingError(
            f"{type(self).__name__} records no tracking; use a process recorder"
        )

    def _insert_notifications(
        self,
        connection: Connection,
        stored_events: Sequence[es.StoredEvent],
        originator_names: Sequence[str] | None,
    ) -> list[int]:
        """Insert the rows, in statements of bounded size; return their ids in order."""
        rows = [_event_row(event) for event in stored_events]
        if originator_names is not None:
            for row, name in zip(rows, originator_names, strict=True):
                row["originator_name"] = name
        table = self.events_table
        notification_ids: list[int] = []
        for chunk in _chunks_of_bounded_state(rows):
            result = connection.execute(sa.insert(table).returning(table.c.id), chunk)
            notification_ids.extend(result.scalars())
        # NOTE: the rows of a statement take ascending ids in the order of their
        # values, and under the writer lock no other insert comes between: so the
        # sorted ids are the ids of the rows in their given order.
        notification_ids.sort()
        return notification_ids

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> list[es.Notification]:
        """Return up to `limit` notifications from `start` (to `stop`), in id order."""
        table = self.events_table
        statement = sa.select(
            table.c.id,
            table.c.originator_id,
            table.c.originator_version,
            table.c.topic,
            table.c.state,
        )
        if start is not None:
            lowest = table.c.id >= start if inclusive_of_start else table.c.id > start
            statement = statement.where(lowest)
        if stop is not None:
            statement = statement.where(table.c.id <= stop)
        if topics:
            statement = statement.where(table.c.topic.in_(topics))
        statement = statement.order_by(table.c.id).limit(limit)
        with self.datastore.reading() as connection:
            rows = connection.execute(statement).all()
        return [
            es.Notification(
                id=row.id,
                originator_id=row.originator_id,
                originator_version=row.originator_version,
                topic=row.topic,
                state=bytes(row.state),
            )
            for row in rows
        ]

    def max_notification_id(self) -> int | None:
        """Return the highest notification id, or None when no event is stored."""
        statement = sa.select(sa.func.max(self.events_table.c.id))
        with self.datastore.reading() as connection:
            highest: int | None = connection.execute(statement).scalar()
        return highest

    def max_originator_versions(
        self, originator_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, int]:
        """Return the highest version of each originator that has events."""
        table = self.events_table
        highest: dict[uuid.UUID, int] = {}
        wanted = list(originator_ids)
        with self.datastore.reading() as connection:
            for start in range(0, len(wanted), MAX_IN_LIST):
                statement = (
                    sa.select(
                        table.c.originator_id, sa.func.max(table.c.originator_version)
                    )
                    .where(
                        table.c.originator_id.in_(wanted[start : start + MAX_IN_LIST])
                    )
                    .group_by(table.c.originator_id)
                )
                for originator_id, version in connection.execute(statement):
                    highest[originator_id] = int(version)
        return highest

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> es.Subscription[es.ApplicationRecorder]:
        """Return an iterator of the notifications after `gt`, waiting for new ones."""
        return PollingSubscription(self, gt=gt, topics=topics)


class _TrackingMethods:
    """Positions kept in a tracking table: one row per upstream application."""

    datastore: SQLAlchemyDatastore
    tracking_table: sa.Table

    def insert_tracking(self, tracking: es.Tracking) -> None:
        """Record a position; `IntegrityError` unless it is past the recorded one."""
        with self.datastore.writing() as connection:
            _insert_tracking(connection, self.tracking_table, tracking)

    def max_tracking_id(self, application_name: str) -> int | None:
        """Return the position recorded for `application_name`, None if none is."""
        statement = sa.select(self.tracking_table.c.notification_id).where(
            self.tracking_table.c.application_name == application_name
        )
        with self.datastore.reading() as connection:
            position: int | None = connection.execute(statement).scalar()
        return position


class SQLAlchemyTrackingRecorder(
    _TrackingMethods, _SQLAlchemyRecorder, es.TrackingRecorder
):
    """The position up to which each upstream application's events were processed."""

    def __init__(
        self,
        datastore: SQLAlchemyDatastore,
        *,
        tracking_table_name: str = DEFAULT_TRACKING_TABLE,
    ) -> None:
        super().__init__(datastore)
        self.tracking_table = _tracking_table(self.metadata, tracking_table_name)


class SQLAlchemyProcessRecorder(
    _TrackingMethods, SQLAlchemyApplicationRecorder, es.ProcessRecorder
):
    """Events with notification ids, recorded atomically with an upstream position."""

    def __init__(
        self,
        datastore: SQLAlchemyDatastore,
        *,
        events_table_name: str = DEFAULT_EVENTS_TABLE,
        tracking_table_name: str = DEFAULT_TRACKING_TABLE,
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.tracking_table = _tracking_table(self.metadata, tracking_table_name)

    def _insert_tracking(self, connection: Connection, tracking: es.Tracking) -> None:
        """Record a position in the same transaction as the events."""
        _insert_tracking(connection, self.tracking_table, tracking)


def _tracking_table(metadata: sa.MetaData, name: str) -> sa.Table:
    """Define a tracking table: one row per upstream application, its position."""
    return sa.Table(
        name,
        metadata,
        sa.Column("application_name", sa.String(255), primary_key=True),
        sa.Column("notification_id", _NOTIFICATION_ID, nullable=False),
        **_MYSQL_TABLE_OPTIONS,
    )


def _insert_tracking(
    connection: Connection, table: sa.Table, tracking: es.Tracking
) -> None:
    """Move an application's position forward, or insert its first one."""
    moved = connection.execute(
        sa.update(table)
        .where(
            table.c.application_name == tracking.application_name,
            table.c.notification_id < tracking.notification_id,
        )
        .values(notification_id=tracking.notification_id)
    )
    if moved.rowcount == 1:
        return

    # NOTE: nothing moved: either no row yet, or one at or past this position, which
    # the insert then refuses with the IntegrityError the contract asks for.
    connection.execute(
        sa.insert(table).values(
            application_name=tracking.application_name,
            notification_id=tracking.notification_id,
        )
    )


def _event_row(event: es.StoredEvent) -> dict[str, Any]:
    """Return the column values of a stored event."""
    return {
        "originator_id": _as_uuid(event.originator_id),
        "originator_version": event.originator_version,
        "topic": event.topic,
        "state": event.state,
    }


def _chunks_of_bounded_state(
    rows: list[dict[str, Any]],
) -> Iterator[list[dict[str, Any]]]:
    """Split rows into runs whose states add up to MAX_STATEMENT_STATE_BYTES at most.

    A row larger than that on its own goes alone.
    """
    chunk: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        state_size = len(row["state"])
        if chunk and size + state_size > MAX_STATEMENT_STATE_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += state_size
    if chunk:
        yield chunk


class PollingSubscription(es.Subscription[SQLAlchemyApplicationRecorder]):
    """Follows a recorder's notifications by polling for new ones.

    Polling is enough because writers commit in notification id order: nothing can
    appear later below an id already seen.
    """

    def __init__(
        self,
        recorder: SQLAlchemyApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
        *,
        interval_seconds: float = 0.1,
        batch_size: int = 500,
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._interval_seconds = interval_seconds
        self._batch_size = batch_size
        self._pending: deque[es.Notification] = deque()
        self._wakeup = Event()

    def stop(self) -> None:
        """Stop the subscription, also while it is waiting for new notifications."""
        super().stop()
        self._wakeup.set()

    def __next__(self) -> es.Notification:
        """Return the next notification, waiting for one to be recorded."""
        while not self._has_been_stopped:
            if self._pending:
                notification = self._pending.popleft()
                self._last_notification_id = notification.id
                return notification
            self._pending.extend(
                self._recorder.select_notifications(
                    start=self._last_notification_id or 0,
                    limit=self._batch_size,
                    topics=self._topics,
                    inclusive_of_start=False,
                )
            )
            if not self._pending:
                self._wakeup.wait(self._interval_seconds)
        raise StopIteration


class SQLAlchemyFactory(es.InfrastructureFactory[SQLAlchemyTrackingRecorder]):
    """Builds these recorders for eventsourcing applications, as the env says.

    `SQLALCHEMY_URL` is the database; table names start with the application's name
    in lower case (`stored` or `notification` without one); `CREATE_TABLE=no` leaves
    the tables to a migration.
    """

    SQLALCHEMY_URL = "SQLALCHEMY_URL"
    CREATE_TABLE = "CREATE_TABLE"

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        url = self.env.get(self.SQLALCHEMY_URL)
        if not url:
            keys = " or ".join(self.env.create_keys(self.SQLALCHEMY_URL))
            raise OSError(
                f"set {keys} to the database URL "
                "(mysql+mysqldb://... or sqlite:///file.db)"
            )
        self.datastore = SQLAlchemyDatastore(url)

    def aggregate_recorder(self, purpose: str = "events") -> es.AggregateRecorder:
        """Return a recorder of aggregate events without notification ids."""
        recorder = SQLAlchemyAggregateRecorder(
            self.datastore, events_table_name=f"{self._prefix('stored')}_{purpose}"
        )
        self._maybe_create_table(recorder)
        return recorder

    def application_recorder(self) -> es.ApplicationRecorder:
        """Return a recorder of events with notification ids."""
        topic = self.env.get(self.APPLICATION_RECORDER_TOPIC)
        recorder_class: type[SQLAlchemyApplicationRecorder] = (
            resolve_topic(topic) if topic else SQLAlchemyApplicationRecorder
        )
        recorder = recorder_class(
            self.datastore, events_table_name=f"{self._prefix('stored')}_events"
        )
        self._maybe_create_table(recorder)
        return recorder

    def tracking_recorder(
        self,
        tracking_recorder_class: type[SQLAlchemyTrackingRecorder] | None = None,
    ) -> SQLAlchemyTrackingRecorder:
        """Return a recorder of positions, of the given class or the env's topic."""
        if tracking_recorder_class is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            tracking_recorder_class = (
                resolve_topic(topic) if topic else SQLAlchemyTrackingRecorder
            )
        recorder = tracking_recorder_class(
            self.datastore,
            tracking_table_name=f"{self._prefix('notification')}_tracking",
        )
        self._maybe_create_table(recorder)
        return recorder

    def process_recorder(self) -> es.ProcessRecorder:
        """Return a recorder of events together with upstream positions."""
        topic = self.env.get(self.PROCESS_RECORDER_TOPIC)
        recorder_class: type[SQLAlchemyProcessRecorder] = (
            resolve_topic(topic) if topic else SQLAlchemyProcessRecorder
        )
        recorder = recorder_class(
            self.datastore,
            events_table_name=f"{self._prefix('stored')}_events",
            tracking_table_name=f"{self._prefix('notification')}_tracking",
        )
        self._maybe_create_table(recorder)
        return recorder

    def close(self) -> None:
        """Close the database connections."""
        self.datastore.close()

    def _prefix(self, default: str) -> str:
        """Return the start of table names: the application's name, or `default`."""
        return self.env.name.lower() or default

    def _maybe_create_table(self, recorder: _SQLAlchemyRecorder) -> None:
        """Create the recorder's tables unless CREATE_TABLE says no."""
        if strtobool(self.env.get(self.CREATE_TABLE) or "yes"):
            recorder.create_table()


def _event_id_in(state: bytes) -> str:
    try:
        fields = json.loads(state)
    except ValueError:
        return ""
    return str(fields.get("event_id", "")) if isinstance(fields, dict) else ""
